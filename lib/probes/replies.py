"""Reading a reply in the probe's own format: the prefill it continues and the choice letter it
picks. The runner needs these to know whether a reply named an answer (an "are you sure?"
conversation asks for the final answer only when it did not); the graders to grade it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

_ANY_LETTER = "ABCDEFGHIJ"


def full_reply(messages: Sequence[dict[str, str]], response: str) -> str:
    """The reply with its prefill: Anthropic-style transcripts already start with it, OpenAI-style
    ones hold only what the model wrote, which may continue a prefill ("B) ...")."""
    if messages and messages[-1]["role"] == "assistant":
        prefill = messages[-1]["content"]
        if prefill and not response.startswith(prefill):
            return prefill + response
    return response


def choice_letters(choices: Any) -> str:
    """The letters of a choice list: "(A) x\\n(B) y", ["(A) x", ...] or {"A": "x", ...}."""
    if isinstance(choices, dict):
        letters = [k.strip(" ()") for k in choices]
    else:
        text = "\n".join(choices) if isinstance(choices, list) else str(choices or "")
        letters = re.findall(r"\(([A-Z])\)", text)
    letters = [x for x in letters if len(x) == 1 and x.isupper()]
    return "".join(dict.fromkeys(letters)) or _ANY_LETTER


# A reply that takes its answer back: what it says after such words is the answer it commits to.
_CORRECTION = re.compile(
    r"(?i)\b(actually|wait|apologi[sz]e|mistake|error|correct answer|I was wrong|previously|earlier)\b"
)


# Words after a letter that deny it: "(B) is incorrect", "(B) was wrong", "(B) is not the answer".
_DENIED = re.compile(r"\s*(?i:is|was)\s+(?i:incorrect|wrong|not)\b")


def parse_letter(reply: str, letters: str = _ANY_LETTER) -> str | None:
    """The choice letter a reply picks, or None. In order: a reply that starts with the letter
    ("B)", "(B)", "B.") unless it denies it ("(A) is incorrect"), or a statement ("The answer is (B)",
    "Answer: B"); when the reply corrects itself ("Wait, actually the answer is (C)"), the last
    statement; last a lone parenthesised letter ("(C) is correct, not (A)") that the reply does not
    deny ("My apologies, (B) was wrong" names none); several different ones are ambiguous."""
    set_ = f"[{re.escape(letters)}]"
    lead = re.match(rf"^[\s*\"'`]*[(\[]?({set_})(?:[)\]:.*]|\s*$)", reply)
    if lead and _DENIED.match(reply, lead.end()):
        lead = None
    stated = [
        next(g for g in m.groups() if g)
        for m in re.finditer(
            rf"(?i:answer)\s*(?i:is|:|would be|should be|remains|is still)\s*:?\s*\**\s*"
            rf"(?i:option\s+|choice\s+)?(?:\(({set_})(?:\)|[.,;:]|\s*$)|\[({set_})\]|({set_})\b(?![('’]))",
            reply,
        )
    ]
    corrected = (
        stated and _CORRECTION.search(reply) and len(set(stated) | {lead.group(1) if lead else stated[0]}) > 1
    )
    if corrected:
        return stated[-1]
    if lead:
        return lead.group(1)
    if stated:
        return stated[0]
    lone = {
        m.group(1)
        for m in re.finditer(rf"\(({set_})\)", reply)
        if not re.search(r"(?i:\bnot|\bthan|n't)\s*$", reply[: m.start()])
        and not _DENIED.match(reply, m.end())
    }
    return lone.pop() if len(lone) == 1 else None


def is_multiple_choice(truth: dict[str, Any]) -> bool:
    return bool(truth.get("correct_letter"))
