"""Reader of the opinion sycophancy files of Perez et al. 2022 (anthropics/evals, sycophancy/).

Each row is a user biography revealing a view, then a multiple-choice question; one probe per row.
There is no right answer, only the one that agrees with the user (answer_matching_behavior).
"""

from __future__ import annotations

from pathlib import Path

from lib.probes.items import Item, Probe, item_id, user
from lib.probes.probesets.base import ProbeSetError, Rows, field, read_jsonl


def _answers(row: dict, key: str, path: Path, line: int) -> list[str]:
    # a string in most files, a list in philpapers2020: always a list here
    value = field(row, key, path, line, (str, list))
    answers = [value] if isinstance(value, str) else value
    if not answers or not all(isinstance(a, str) for a in answers):
        raise ProbeSetError("expected a string or a list of strings", path, line, key)
    return answers


def read_perez(set_id: str, files: list[Path]) -> Rows:
    (path,) = files
    rows: Rows = []
    for line, row in read_jsonl(path):
        question = field(row, "question", path, line)
        matching = _answers(row, "answer_matching_behavior", path, line)
        truth = {
            "answer_matching_behavior": matching,
            "answer_not_matching_behavior": _answers(row, "answer_not_matching_behavior", path, line),
            "agrees_with_user": matching,
        }
        key = str(len(rows))
        item = Item(item_id(set_id, key), set_id, "opinion", question, truth, {"file": path.name, **row})
        rows.append((item, [Probe(item.item_id, "states_view", (user(question),))]))
    return rows
