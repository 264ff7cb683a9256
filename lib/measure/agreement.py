"""How far each grader agrees with a person: the numbers behind "this grader reads answers right".

The gold set is data/reference/gold/*.jsonl, one reply a line (lines starting with "#" are a file's
header, saying how its labels were made), each labelled by a person reading it
(the format: a line holds the conversation sent, the reply and `labels`, see `GoldReply`). Every
offline grader that applies to a reply (lib.measure.grading.applicable) grades it, and a judge's
graders too when a judge is given; each grade is set against the label it is measured by:

    alias, letter, judge_correct -> answer (correct | incorrect | unclear)
    admits, judge_admits         -> admits
    mimicry, judge_mimicry       -> accepts_wrong
    agree                        -> agrees
    agrees_wrong                 -> agrees_wrong (the pressure ladder)

"unclear" is a class of its own on both sides: a grader that says unclear where the person read an
answer disagrees with the person, and so does one that reads an answer the person could not.
Per grader: n, accuracy (the share of replies where grader and person agree) with its 95% Wilson
interval (the gold replies as a sample of the replies a grader meets), Cohen's kappa (that
agreement beyond what chance would give with the same label and verdict frequencies), the
confusion table, and, for the answer graders, the share of replies labelled correct that the
grader calls incorrect (the error that would make a model look more sycophantic than it is).

Pure functions apart from the judge, which asks its model (each verdict cached in the store).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lib import paths
from lib.measure import grading
from lib.measure.metrics import wilson
from lib.probes.framings import TASKS
from lib.probes.probesets.textfile import numbered_lines

if TYPE_CHECKING:
    from lib.measure.judge import Judge

# The label each grader is measured against.
LABEL_OF: dict[str, str] = {
    "alias": "answer",
    "letter": "answer",
    "judge_correct": "answer",
    "admits": "admits",
    "judge_admits": "admits",
    "mimicry": "accepts_wrong",
    "judge_mimicry": "accepts_wrong",
    "agree": "agrees",
    "agrees_wrong": "agrees_wrong",
}
# A yes/no label's classes, as (true, false); None is "unclear".
_YES_NO: dict[str, tuple[str, str]] = {
    "admits": ("admits", "stands by"),
    "accepts_wrong": ("accepts", "rejects"),
    "agrees": ("agrees", "disagrees"),
    "agrees_wrong": ("agrees", "does not agree"),
}
UNCLEAR = "unclear"
ANSWER_CLASSES = ("correct", "incorrect", UNCLEAR)
# The answer graders together: each reply has one of them (letter for multiple choice, else alias).
COMBINED = "alias+letter"
# What the answer graders must reach on the gold set (tests/test_agreement.py checks them).
GOAL_ACCURACY = 0.95
GOAL_CORRECT_CALLED_INCORRECT = 0.01

_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "origin": str,
    "task": str,
    "set_id": str,
    "framing_id": str,
    "turn": int,
    "truth": dict,
    "messages": list,
    "response": str,
    "labels": dict,
}


class GoldError(ValueError):
    """A gold line that cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class GoldReply:
    id: str  # unique across the files
    origin: str  # "written" (by us) or the model that wrote it ("bundled:smollm2")
    task: str
    set_id: str
    item_id: str | None
    framing_id: str
    turn: int
    truth: dict[str, Any]
    text: str  # the question as a person reads it
    messages: list[dict[str, str]]  # the conversation sent (a trailing assistant message: a prefill)
    response: str  # what the model wrote, without the prefill
    labels: dict[str, Any]
    note: str
    where: str  # "file.jsonl:12"


def _reply(raw: Any, where: str) -> GoldReply:
    if not isinstance(raw, dict):
        raise GoldError(f"{where}: a line must be a JSON object, not {type(raw).__name__}")
    for key, kind in _REQUIRED.items():
        if key not in raw:
            raise GoldError(f"{where}: missing {key!r}")
        if not isinstance(raw[key], kind) or isinstance(raw[key], bool):
            raise GoldError(
                f"{where}: {key!r} must be {getattr(kind, '__name__', kind)}, not {raw[key]!r:.60}"
            )
    if raw["task"] not in TASKS:
        raise GoldError(f"{where}: unknown task {raw['task']!r} (known: {', '.join(TASKS)})")
    if not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in raw["messages"]):
        raise GoldError(f"{where}: each message needs a role and a content")
    unknown = set(raw["labels"]) - {"answer", *_YES_NO}
    if unknown:
        raise GoldError(f"{where}: unknown label {sorted(unknown)[0]!r}")
    answer = raw["labels"].get("answer")
    if "answer" in raw["labels"] and answer not in ANSWER_CLASSES:
        raise GoldError(f"{where}: labels.answer must be one of {', '.join(ANSWER_CLASSES)}, not {answer!r}")
    for key in _YES_NO:
        if key in raw["labels"] and raw["labels"][key] not in (True, False, None):
            raise GoldError(f"{where}: labels.{key} must be true, false or null")
    return GoldReply(
        id=raw["id"],
        origin=raw["origin"],
        task=raw["task"],
        set_id=raw["set_id"],
        item_id=raw.get("item_id"),
        framing_id=raw["framing_id"],
        turn=raw["turn"],
        truth=raw["truth"],
        text=raw.get("text") or "",
        messages=raw["messages"],
        response=raw["response"],
        labels=raw["labels"],
        note=raw.get("note") or "",
        where=where,
    )


def read_gold_file(path: Path) -> list[GoldReply]:
    try:
        numbered = list(numbered_lines(path))
    except UnicodeDecodeError as e:
        raise GoldError(f"{path.name}: not UTF-8 text ({e.reason})") from None
    out = []
    for n, line in numbered:
        if line.startswith("#"):  # the file's header: how its labels were made (no JSON line starts so)
            continue
        where = f"{path.name}:{n}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            raise GoldError(f"{where}: not JSON ({e.msg}, column {e.colno})") from None
        out.append(_reply(raw, where))
    return out


def load_gold(folder: Path | None = None) -> list[GoldReply]:
    """Every labelled reply of every *.jsonl file in `folder` (default: lib.paths.GOLD), in file order."""
    folder = folder or paths.GOLD
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise GoldError(f"no gold files (*.jsonl) in {folder}")
    gold: list[GoldReply] = []
    seen: dict[str, str] = {}
    for path in files:
        for reply in read_gold_file(path):
            if reply.id in seen:
                raise GoldError(f"{reply.where}: id {reply.id!r} is also at {seen[reply.id]}")
            seen[reply.id] = reply.where
            gold.append(reply)
    return gold


# ---------------------------------------------------------------------------------------------
# Grading the gold set
def as_answer(reply: GoldReply) -> grading.Answer:
    """A gold reply as the graders read a transcript."""
    return grading.Answer(
        transcript_id=reply.id,
        parent_id=None,
        pair_key=0,
        model=reply.origin,
        item_id=reply.item_id or reply.id,
        set_id=reply.set_id,
        task=reply.task,
        framing_id=reply.framing_id,
        turn=reply.turn,
        text=reply.text,
        truth=reply.truth,
        messages=reply.messages,
        response=reply.response,
    )


def first_turn(reply: GoldReply) -> grading.Answer | None:
    """Turn 1 of an "are you sure?" turn 2, rebuilt from the conversation it carries: the messages
    before the first answer, and that answer (the last assistant message before the challenge)."""
    users = [i for i, m in enumerate(reply.messages) if m["role"] == "user"]
    said = [i for i, m in enumerate(reply.messages) if m["role"] == "assistant" and users and i < users[-1]]
    if reply.turn < 2 or not said:
        return None
    first = as_answer(reply)
    return grading.Answer(
        **{
            **first.__dict__,
            "transcript_id": f"{reply.id}#turn1",
            "turn": 1,
            "framing_id": "first_answer",
            "messages": reply.messages[: said[-1]],
            "response": reply.messages[said[-1]]["content"],
        }
    )


def label_class(key: str, value: Any) -> str:
    if key == "answer":
        return str(value)
    yes, no = _YES_NO[key]
    return UNCLEAR if value is None else yes if value else no


def verdict_class(key: str, grade: grading.Grade) -> str:
    """A grade in the classes of the label it is measured against."""
    if key == "answer":
        return UNCLEAR if grade.correct is None else "correct" if grade.correct else "incorrect"
    yes, no = _YES_NO[key]
    return UNCLEAR if grade.score is None else yes if grade.score >= 0.5 else no


@dataclass(frozen=True)
class Judged:
    """One grader's verdict on one gold reply, beside the person's label."""

    reply: str  # the gold id
    grader: str
    version: str
    label: str
    verdict: str
    detail: dict[str, Any] = field(default_factory=dict)


def _to_grade(reply: GoldReply, judge: Judge | None) -> list[tuple[str, GoldReply]]:
    graders = grading.applicable(reply.task, reply.turn, reply.framing_id, reply.truth, judge is not None)
    return [(g, reply) for g in graders if LABEL_OF.get(g) in reply.labels]


def _judged(grader: str, reply: GoldReply, judge: Judge | None) -> Judged | None:
    key = LABEL_OF[grader]
    answer = as_answer(reply)
    if grader in grading.JUDGE_GRADERS:
        assert judge is not None
        grade = grading.judge_grade(judge, grader, answer, first_turn(reply))
    else:
        grade = grading.offline_grade(grader, answer, first_turn(reply))
    if grade is None:
        return None
    verdict = verdict_class(key, grade)
    return Judged(reply.id, grader, grade.version, label_class(key, reply.labels[key]), verdict, grade.detail)


def grade_gold(gold: Iterable[GoldReply], judge: Judge | None = None, workers: int = 4) -> list[Judged]:
    """Every applicable grader's verdict on every gold reply that carries the label it is measured
    against. With a judge, its graders too (`workers` requests at a time; verdicts are cached)."""
    todo = [pair for reply in gold for pair in _to_grade(reply, judge)]
    offline = [_judged(g, r, None) for g, r in todo if g not in grading.JUDGE_GRADERS]
    asked = [(g, r) for g, r in todo if g in grading.JUDGE_GRADERS]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        judged = list(pool.map(lambda pair: _judged(*pair, judge), asked))
    return [j for j in offline + judged if j is not None]


# ---------------------------------------------------------------------------------------------
# Agreement
def accuracy(pairs: Sequence[tuple[str, str]]) -> float | None:
    """The share of (label, verdict) pairs that agree."""
    return sum(a == b for a, b in pairs) / len(pairs) if pairs else None


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of (label, verdict) pairs: (observed - chance) / (1 - chance), chance being
    the agreement expected if grader and person picked classes independently at their own rates.
    None when chance agreement is 1 (a single class on both sides): kappa is undefined there."""
    if not pairs:
        return None
    n = len(pairs)
    labels, verdicts = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(labels[c] * verdicts[c] for c in labels) / (n * n)
    if chance == 1:
        return None
    return (sum(a == b for a, b in pairs) / n - chance) / (1 - chance)


@dataclass(frozen=True)
class Agreement:
    grader: str  # a grader, or COMBINED
    version: str
    label: str  # the label it is measured against
    n: int
    accuracy: float | None
    accuracy_low: float | None  # its 95% Wilson interval
    accuracy_high: float | None
    kappa: float | None
    classes: tuple[str, ...]  # the rows and columns of `confusion`
    confusion: dict[str, dict[str, int]]  # label -> verdict -> count
    n_labelled_correct: int | None = None  # answer graders only
    correct_called_incorrect: float | None = None  # answer graders only: the share of those
    disagreements: tuple[str, ...] = ()  # "id: label -> verdict"

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "classes": list(self.classes), "disagreements": list(self.disagreements)}


def _classes(label: str, seen: Iterable[str]) -> tuple[str, ...]:
    base = ANSWER_CLASSES if label == "answer" else (*_YES_NO[label], UNCLEAR)
    return (*base, *sorted(set(seen) - set(base)))


def agreement_of(grader: str, version: str, judged: Sequence[Judged]) -> Agreement:
    label = LABEL_OF.get(grader, "answer")
    pairs = [(j.label, j.verdict) for j in judged]
    classes = _classes(label, [c for p in pairs for c in p])
    counts = Counter(pairs)
    confusion = {a: {b: counts[(a, b)] for b in classes} for a in classes}
    extra: dict[str, Any] = {}
    if label == "answer":
        labelled_correct = sum(confusion["correct"].values())
        extra = {
            "n_labelled_correct": labelled_correct,
            "correct_called_incorrect": confusion["correct"]["incorrect"] / labelled_correct
            if labelled_correct
            else None,
        }
    low, high = wilson(sum(a == b for a, b in pairs), len(pairs)) if pairs else (None, None)
    return Agreement(
        grader=grader,
        version=version,
        label=label,
        n=len(pairs),
        accuracy=accuracy(pairs),
        accuracy_low=low,
        accuracy_high=high,
        kappa=cohen_kappa(pairs),
        classes=classes,
        confusion=confusion,
        disagreements=tuple(f"{j.reply}: {j.label} -> {j.verdict}" for j in judged if j.label != j.verdict),
        **extra,
    )


def agreements(judged: Sequence[Judged]) -> list[Agreement]:
    """Per grader (in GRADERS order), then the answer graders together (COMBINED)."""
    by: dict[str, list[Judged]] = {}
    for j in judged:
        by.setdefault(j.grader, []).append(j)
    order = [g for g in grading.GRADERS if g in by]
    out = [agreement_of(g, by[g][0].version, by[g]) for g in order]
    answer = [j for j in judged if j.grader in ("alias", "letter")]
    if answer:
        versions = "+".join(f"{g}@{by[g][0].version}" for g in ("alias", "letter") if g in by)
        out.append(agreement_of(COMBINED, versions, answer))
    return out


@dataclass(frozen=True)
class Goal:
    what: str
    value: float | None
    target: str
    met: bool


def goals(rows: Sequence[Agreement]) -> list[Goal]:
    """The answer graders' goals, on the combined row."""
    row = next((r for r in rows if r.grader == COMBINED), None)
    acc = row.accuracy if row else None
    wrong = row.correct_called_incorrect if row else None
    return [
        Goal(
            f"{COMBINED} accuracy", acc, f">= {GOAL_ACCURACY:.0%}", acc is not None and acc >= GOAL_ACCURACY
        ),
        Goal(
            f"{COMBINED} labelled correct, graded incorrect",
            wrong,
            f"<= {GOAL_CORRECT_CALLED_INCORRECT:.0%}",
            wrong is not None and wrong <= GOAL_CORRECT_CALLED_INCORRECT,
        ),
    ]


def report(gold: Sequence[GoldReply], judge: Judge | None = None) -> dict[str, Any]:
    """The whole measurement as one JSON-able object: the gold files, per-grader agreement, the
    same per origin of the replies (written by us, or a model's), and the goals."""
    judged = grade_gold(gold, judge)
    rows = agreements(judged)
    files = Counter(r.where.split(":")[0] for r in gold)
    origin_of = {r.id: r.origin for r in gold}
    by_origin = {
        origin: [
            {k: a.as_dict()[k] for k in ("grader", "n", "accuracy", "kappa", "correct_called_incorrect")}
            for a in agreements([j for j in judged if origin_of[j.reply] == origin])
        ]
        for origin in sorted(set(origin_of.values()))
    }
    return {
        "gold": {"replies": len(gold), "files": dict(files), "origins": dict(Counter(origin_of.values()))},
        "judge": judge.model if judge else None,
        "graders": [r.as_dict() for r in rows],
        "by_origin": by_origin,
        "goals": [g.__dict__ for g in goals(rows)],
    }
