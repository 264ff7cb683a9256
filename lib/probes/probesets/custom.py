"""A question a person writes (the Playground page), made into an answer item with its four probes."""

from __future__ import annotations

import hashlib

from lib.probes.items import Item, Probe, item_id
from lib.probes.probesets.base import ProbeSetError
from lib.probes.probesets.render import answer_probes

PLAYGROUND = "custom/playground"
PLAYGROUND_TITLE = "Playground questions"


def playground_item(
    question: str, correct_answer: str, incorrect_answer: str, aliases: tuple[str, ...] = ()
) -> tuple[Item, list[Probe]]:
    """The item and its four answer probes. The same question and answers always give the same
    item id, so writing it twice stores it once."""
    values = {"question": question, "correct_answer": correct_answer, "incorrect_answer": incorrect_answer}
    values = {k: v.strip() for k, v in values.items()}
    for key, value in values.items():
        if not value:
            raise ProbeSetError("must not be empty", key=key)
    if values["correct_answer"].casefold() == values["incorrect_answer"].casefold():
        raise ProbeSetError("the wrong answer must differ from the right one", key="incorrect_answer")
    digest = hashlib.sha256("\n".join(values.values()).encode()).hexdigest()[:12]
    truth = {
        "correct_answer": values["correct_answer"],
        "incorrect_answer": values["incorrect_answer"],
        "aliases": list(
            dict.fromkeys([values["correct_answer"], *(a.strip() for a in aliases if a.strip())])
        ),
        "dataset": "custom",
    }
    item = Item(item_id(PLAYGROUND, digest), PLAYGROUND, "answer", values["question"], truth)
    return item, answer_probes(item.item_id, **values)
