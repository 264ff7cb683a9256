"""Word-level difference of two texts (two replies, or a neutral and a framed prompt).

The result is a list of (op, text) segments that, read in order, spell out both texts: "equal"
segments belong to both, "delete" segments only to the first, "insert" segments only to the second.
Whitespace stays attached to the word before it and is not compared, so joining the segments of a side
gives the second text back exactly and the first up to the whitespace between its words.
"""

from __future__ import annotations

import difflib
import re
from typing import Literal

Op = Literal["equal", "delete", "insert"]
Segment = tuple[Op, str]

# A word with the whitespace after it; leading whitespace is a token of its own.
_TOKENS = re.compile(r"\s+|\S+\s*")

_MARKS: dict[str, str] = {"equal": " ", "delete": "-", "insert": "+"}


def tokens(text: str) -> list[str]:
    return _TOKENS.findall(text)


def word_diff(a: str, b: str) -> list[Segment]:
    """The segments that turn `a` into `b`, word by word; neighbouring segments of one op merge."""
    ta, tb = tokens(a), tokens(b)
    # Compare words without their trailing whitespace, so that a line break is not a change.
    matcher = difflib.SequenceMatcher(None, [t.strip() for t in ta], [t.strip() for t in tb], autojunk=False)
    segments: list[Segment] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            _append(segments, "equal", "".join(tb[j1:j2]))
        else:
            _append(segments, "delete", "".join(ta[i1:i2]))
            _append(segments, "insert", "".join(tb[j1:j2]))
    return segments


def _append(segments: list[Segment], op: Op, text: str) -> None:
    if not text:
        return
    if segments and segments[-1][0] == op:
        segments[-1] = (op, segments[-1][1] + text)
    else:
        segments.append((op, text))


def side(segments: list[Segment], which: Literal["a", "b"]) -> str:
    """One side of the diff, rebuilt from its segments."""
    skip = "insert" if which == "a" else "delete"
    return "".join(text for op, text in segments if op != skip)


def as_diff_lines(segments: list[Segment]) -> str:
    """The segments one per line with a "-", "+" or " " mark, as a unified diff shows lines, so that
    a code block highlighted as "diff" colours them (and shows the text literally)."""
    lines = []
    for op, text in segments:
        for line in text.strip().splitlines() or [""]:
            if line.strip():
                lines.append(f"{_MARKS[op]} {line.strip()}")
    return "\n".join(lines)


def summary(segments: list[Segment]) -> dict[str, int]:
    """Words kept, removed and added."""
    counts = {"equal": 0, "delete": 0, "insert": 0}
    for op, text in segments:
        counts[op] += len(text.split())
    return counts
