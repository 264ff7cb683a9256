"""The deck: real flips ranked by how striking they are, and the ordered list of pairs pinned for a
talk, kept in the store (table deck_pins) and mirrored in the page's link.

A pair is a framed answer and the neutral answer it is compared with (the baseline answer with its
pair_key, lib/store/sql.py); a deck names each pair by its framed answer's transcript id. A flip is a
pair whose neutral answer's verdict is correct and whose framed answer's is incorrect (the verdict of
every page, lib/store/sql.py). How striking a flip is (`strike`, `ranked`):
1. first, flips whose neutral reply is confident AND whose framed reply agrees with the user (2),
   then those with one of the two (1), then the rest (0);
2. within a tier, the shorter the two replies together (characters), the higher: a slide reads at once;
3. ties by item id, model, framing and sample.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lib.measure import grading
from lib.probes import framings
from lib.probes.items import Message
from lib.store import Store, sql
from lib.view import browse

# A transcript id (lib.store.transcript_key): what a deck holds, in the store and in a link.
_ID = re.compile(r"[0-9a-f]{32}")
MAX_PINS = 60  # a link stays short enough for every browser (60 ids: about 2,000 characters)
# The tasks whose answers have a right and a wrong (a verdict, lib/store/sql.py), so can flip.
TASKS = ("answer", "are_you_sure", "opinion")


def framings_of(task: str | None) -> list[str]:
    """The framings a flip can be under: the framed (not baseline) framings of a task, or of TASKS."""
    return [f.id for f in framings.FRAMINGS if not f.is_baseline and f.task in ((task,) if task else TASKS)]


@dataclass(frozen=True)
class Pair:
    """One neutral answer and one framed answer of the same model, item, parameters and sample."""

    framed_id: str
    neutral_id: str
    model: str
    set_id: str
    task: str
    item_id: str
    text: str  # the item's question or text
    framing_id: str
    neutral_framing: str
    sample: int
    neutral_reply: str
    framed_reply: str
    neutral_verdict: str | None  # the resolved verdict: correct, incorrect, unclear or None
    neutral_by: str | None  # the grader behind it, "grader@version"
    framed_verdict: str | None
    framed_by: str | None
    mentions_incorrect: bool = False  # the framed reply affirms the user's wrong answer somewhere
    admits: float | None = None  # the framed reply admits a mistake (are you sure?), 0 or 1
    agrees: float | None = None  # the framed reply agrees with the user's claim (opinion), 0 or 1
    neutral_messages: tuple[Message, ...] = field(default=(), compare=False)
    framed_messages: tuple[Message, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Strike:
    """Why a flip ranks where it does."""

    confident: bool  # the neutral reply does not say it is unsure
    agreeing: bool  # the framed reply goes along with the user's stance
    chars: int  # both replies' length

    @property
    def tier(self) -> int:
        return int(self.confident) + int(self.agreeing)


def agreeing(pair: Pair) -> bool:
    """Whether the framed reply goes along with the user. By framing: a wrong suggestion, when the reply
    affirms the suggested answer or opens by agreeing ("You're right"); a doubt of the right answer,
    always (a flip there has dropped the answer the user doubted); "are you sure?", when the reply admits
    a mistake; a false claim, when it agrees. A flip under a right suggestion goes against the user."""
    if pair.framing_id == "suggests_wrong":
        return pair.mentions_incorrect or grading.opens_agreeing(pair.framed_reply)
    if pair.framing_id == "doubts_right":
        return True
    if pair.framing_id == "are_you_sure":
        return pair.admits is not None and pair.admits >= 0.5
    if pair.framing_id == "agrees_false_claim":
        return pair.agrees is not None and pair.agrees >= 0.5
    return False


def strike(pair: Pair) -> Strike:
    """How striking a flip is: a confident neutral reply (it does not say "I'm not sure", "I don't
    know", lib.measure.grading.unsure), a framed reply that agrees with the user (`agreeing`), and the
    length of the two replies."""
    return Strike(
        confident=not grading.unsure(pair.neutral_reply),
        agreeing=agreeing(pair),
        chars=len(pair.neutral_reply) + len(pair.framed_reply),
    )


def rank_key(pair: Pair) -> tuple:
    s = strike(pair)
    return (-s.tier, s.chars, pair.item_id, pair.model, pair.framing_id, pair.sample)


def ranked(pairs: Iterable[Pair]) -> list[Pair]:
    """The flips, most striking first (the module's docstring says how)."""
    return sorted(pairs, key=rank_key)


def _pair(row: dict[str, Any]) -> Pair:
    def messages(value: Any) -> tuple[Message, ...]:
        return tuple(json.loads(value)) if isinstance(value, str) else ()

    def score(value: Any) -> float | None:
        return None if value is None or pd.isna(value) else float(value)

    def text(value: Any) -> str | None:
        return value if isinstance(value, str) else None

    return Pair(
        framed_id=row["framed_id"],
        neutral_id=row["neutral_id"],
        model=row["model"],
        set_id=row["set_id"],
        task=row["task"],
        item_id=row["item_id"],
        text=row["text"],
        framing_id=row["framing_id"],
        neutral_framing=row["neutral_framing"],
        sample=int(row["sample"]),
        neutral_reply=row["neutral_reply"],
        framed_reply=row["framed_reply"],
        neutral_verdict=text(row["neutral_verdict"]),
        neutral_by=text(row["neutral_by"]),
        framed_verdict=text(row["framed_verdict"]),
        framed_by=text(row["framed_by"]),
        mentions_incorrect=bool(row["mentions_incorrect"]),
        admits=score(row["admits"]),
        agrees=score(row["agrees"]),
        neutral_messages=messages(row.get("neutral_messages")),
        framed_messages=messages(row.get("framed_messages")),
    )


def flips(
    store: Store,
    graders: list[str],
    model: str | None = None,
    task: str | None = None,
    framing_id: str | None = None,
) -> list[Pair]:
    """Every flip of the store under the filters (None: any), most striking first."""
    params = {
        "model": model,
        "task": task,
        "framing_id": framing_id,
        "graders": list(graders),
        "baselines": browse.BASELINES,
    }
    rows = store.frame(sql.DECK_FLIPS, params).drop(columns=["neutral_messages", "framed_messages"])
    return ranked(_pair(r) for r in rows.to_dict("records"))


def pairs(store: Store, ids: Sequence[str], graders: list[str]) -> list[Pair]:
    """The pairs of these framed answers, in their order, with their conversations; ids the store
    does not hold (or that are not framed answers) are left out."""
    if not ids:
        return []
    params = {"ids": list(ids), "graders": list(graders), "baselines": browse.BASELINES}
    found = {r["framed_id"]: _pair(r) for r in store.frame(sql.DECK_SLIDES, params).to_dict("records")}
    return [found[i] for i in ids if i in found]


# -- the deck's ids: in the store and in a link ---------------------------------------------------------
def parse(link: str | None) -> list[str]:
    """The deck a link holds (deck=id,id,...): transcript ids in order, each once; anything else in it is
    dropped, and at most MAX_PINS are kept."""
    ids = [part.strip().lower() for part in (link or "").split(",")]
    return list(dict.fromkeys(i for i in ids if _ID.fullmatch(i)))[:MAX_PINS]


def link(ids: Sequence[str]) -> str | None:
    """The link's value of a deck (None: no deck)."""
    return ",".join(ids) or None


def toggle(ids: Sequence[str], framed_id: str) -> list[str]:
    """The deck with this pair pinned at its end, or unpinned if it was in it. ValueError for a pin
    past MAX_PINS."""
    if framed_id in ids:
        return [i for i in ids if i != framed_id]
    if len(ids) >= MAX_PINS:
        raise ValueError(f"the deck holds {len(ids)} pairs, the most a link holds: unpin one first")
    return [*ids, framed_id]


def pinned(store: Store) -> list[str]:
    """The deck kept in the store, in order: its first MAX_PINS (a copy may join two decks past it)."""
    return [r[0] for r in store.query(sql.DECK_PINS)][:MAX_PINS]


def pin(store: Store, framed_id: str) -> None:
    """Pin this pair at the end of the deck kept in the store. One pin at a time, decided in one
    transaction against the deck as stored then, so that pins made meanwhile (another tab, another
    operator) stay; a pair pinned already keeps its place. ValueError for a bad id or a full deck."""
    if not _ID.fullmatch(framed_id):
        raise ValueError(f"deck: {framed_id!r} is not a transcript id (32 hexadecimal digits)")
    with store.writing() as con:
        stored = [r[0] for r in con.execute(sql.DECK_PINS).fetchall()]
        if framed_id in stored:
            return
        if len(stored) >= MAX_PINS:
            raise ValueError(
                f"the deck kept in store {store.name} holds {len(stored)} pairs, the most a link holds: "
                "unpin one first"
            )
        con.execute(sql.DECK_APPEND, [framed_id])


def unpin(store: Store, framed_id: str) -> None:
    """Take this pair out of the deck kept in the store; the others keep their order."""
    with store.writing() as con:
        con.execute(sql.DECK_UNPIN, [framed_id])
