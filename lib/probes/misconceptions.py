"""Misconception items for the preference test (Sharma et al. 2023, section 4.3, Fig. 7a): a user who
holds a misconception, a reply that agrees with it convincingly (sycophantic) and two replies that
correct it, in difficulty bands. As in the paper, the sycophantic reply is compared with each kind
of truthful reply: a baseline truthful one (a plain correction) and a helpful truthful one (a
correction written to be as helpful and convincing as possible: warm, saying why the belief is
common, giving the evidence).

The built-in set (data/reference/misconceptions.jsonl) is the project's own writing: 36 common
misconceptions, 12 in each band. Its bands are the author's judgement of how widely the
misconception is believed (easy: most adults know it is false; hard: widely believed, even by
educated adults), not measured as the paper measured its own. A user's file in the same format
is read by the same reader (`python -m lib prefer --from FILE`). The paper's misconception data
was not released in any form found here, so no reader for it exists.

One line per item, a JSON object: id, band (one of BANDS), user (the user's message), sycophantic,
truthful (the baseline truthful reply), helpful (the helpful truthful reply) and optionally fact
(the truth in a few words, for people reading).

Length: a judge may simply prefer the shorter (or the longer) reply. The built-in baseline truthful
replies are written to the length of their sycophantic reply (within 15%, a test checks), so that
comparison is not one of length; the helpful truthful replies are about four times as long by
design, as the paper's were meant to be fuller. The test reports the mean length of each kind.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from lib.paths import REFERENCE
from lib.probes.items import Message, user
from lib.probes.probesets.base import ProbeSetError, field, read_jsonl

BUILTIN = REFERENCE / "misconceptions.jsonl"
BUILTIN_NAME = "builtin/misconceptions"
BANDS = ("easy", "medium", "hard")  # in order of difficulty: the chart's x axis
# The kinds of truthful reply the sycophantic one is compared with, each by its key in the file.
TRUTHFUL_KINDS = {"baseline": "truthful", "helpful": "helpful"}


@dataclass(frozen=True)
class Misconception:
    key: str  # unique within its file
    band: str
    user: str  # the user's message, stating the misconception
    sycophantic: str
    truthful: str  # the baseline truthful reply
    helpful: str  # the helpful truthful reply
    fact: str = ""

    @property
    def conversation(self) -> list[Message]:
        """What both replies answer."""
        return [user(self.user)]

    def truthful_reply(self, kind: str) -> str:
        """The truthful reply of a kind of TRUTHFUL_KINDS."""
        return self.truthful if kind == "baseline" else self.helpful


def read(path: Path = BUILTIN) -> list[Misconception]:
    """Every item of a misconception file, in its order. A malformed line, a band not in BANDS, an
    empty text, a truthful reply equal to the sycophantic one or to the other truthful one, or an id
    seen before is an error naming the file, the line and the key."""
    pairs: list[Misconception] = []
    seen: set[str] = set()
    for line, row in read_jsonl(path):
        texts = {
            name: field(row, name, path, line).strip()
            for name in ("id", "band", "user", "sycophantic", "truthful", "helpful")
        }
        for name, text in texts.items():
            if not text:
                raise ProbeSetError("empty value", path, line, name)
        if texts["band"] not in BANDS:
            raise ProbeSetError(f"expected one of {', '.join(BANDS)}", path, line, "band")
        if texts["id"] in seen:
            raise ProbeSetError("an id seen on an earlier line", path, line, "id")
        for name in TRUTHFUL_KINDS.values():
            if texts[name] == texts["sycophantic"]:
                raise ProbeSetError("the same text as the sycophantic reply", path, line, name)
        if texts["helpful"] == texts["truthful"]:
            raise ProbeSetError("the same text as the baseline truthful reply", path, line, "helpful")
        seen.add(texts["id"])
        fact = row.get("fact", "")
        pairs.append(
            Misconception(
                texts["id"],
                texts["band"],
                texts["user"],
                texts["sycophantic"],
                texts["truthful"],
                texts["helpful"],
                fact if isinstance(fact, str) else "",
            )  # fmt: skip
        )
    if not pairs:
        raise ProbeSetError("no items: the file is empty", path)
    return pairs


def source_name(path: Path) -> str:
    """How a file is named in the store and on the page: the built-in set by its name, any other
    file by its file name, each with the first 8 hex digits of the SHA-256 of its bytes
    ("mine.jsonl@1a2b3c4d"). Two different files of one name, or one file edited, never pool their
    verdicts; the same file read from anywhere keeps its name."""
    name = BUILTIN_NAME if path.resolve() == BUILTIN.resolve() else path.name
    return f"{name}@{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}"
