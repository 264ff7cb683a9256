"""Replies made elsewhere, imported so that they are graded and counted like the runner's:
`python -m lib import FILE`.

FILE holds JSON lines, one reply a line:

    {"item_id": "builtin/facts-answer#capitals-3", "framing": "suggests_wrong",
     "model": "openai:gpt-4o", "response": "I think it is Canberra."}

Optional fields: "sample" (default 0), "turn" (default 1), "id" (a name for the line, so that a later
turn can name it), "parent" (the id of the line holding the previous turn: turns 2 and 3 of "are you
sure?"), "messages" (the conversation the reply answers, when it is not the probe's).

The item and its framing must be in the store (`python -m lib ingest SET` first): the reply belongs to
the probe f"{item_id}|{framing}". An "are you sure?" conversation is one probe (framing "are_you_sure";
"first_answer" names its turn 1 too); the messages of its turns 2 and 3 default to the ones the runner
would send after the parent's reply (lib.run.runner.challenge_messages, final_answer_messages).

Each reply is stored as a transcript of its model with imported = true, no run, no server, params
{"imported": true}, under the cache key transcript_key(model, None, messages, {"imported": true},
sample): importing a file twice adds nothing, and an imported reply never passes for a sent one.
The whole file is checked before anything is stored (one transaction): a malformed line, a missing
field, an unknown item or framing, a parent that is not in the file refuse the file, with the line
numbers. Grading is left to the caller (measurement is a room above this one): the command line grades
after importing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from lib.probes import framings, replies
from lib.probes.items import Message, messages_json
from lib.probes.probesets.textfile import numbered_lines
from lib.run import runner
from lib.store import Store, sql, transcript_key

PARAMS = {"imported": True}
REQUIRED = ("item_id", "framing", "model", "response")
OPTIONAL = ("sample", "turn", "id", "parent", "messages")
ROLES = ("system", "user", "assistant")
MAX_SHOWN = 20  # problems listed in a refusal


class ImportRefused(ValueError):
    """A file that cannot be imported, with every problem found, each on its line."""

    def __init__(self, path: Path, problems: list[str]):
        shown = problems[:MAX_SHOWN]
        more = len(problems) - len(shown)
        lines = "\n".join(f"  {p}" for p in shown) + (f"\n  ... and {more} more" if more else "")
        super().__init__(f"{path}: nothing imported; {len(problems)} problem(s):\n{lines}")
        self.problems = problems


@dataclass
class Line:
    number: int  # in the file, from 1
    item_id: str
    framing: str
    model: str
    response: str
    sample: int = 0
    turn: int = 1
    id: str | None = None
    parent: str | None = None
    messages: list[Message] | None = None

    @property
    def probe_id(self) -> str:
        # turn 1 of an "are you sure?" conversation is stored under its one probe, as the runner does
        framing = "are_you_sure" if self.framing == "first_answer" else self.framing
        return f"{self.item_id}|{framing}"


@dataclass(frozen=True)
class Imported:
    lines: int  # replies in the file
    added: int  # new in the store (the others were there already)
    transcript_ids: tuple[str, ...]


def read(path: Path) -> tuple[list[Line], list[str]]:
    """The file's well-formed replies, and a problem for each malformed line."""
    try:
        numbered = list(numbered_lines(path))
    except (OSError, UnicodeDecodeError) as e:
        raise ImportRefused(path, [f"cannot read the file: {e}"]) from None
    lines: list[Line] = []
    problems: list[str] = []
    for number, raw in numbered:
        try:
            lines.append(_line(number, raw))
        except ValueError as e:
            problems.append(f"line {number}: {e}")
    if not lines and not problems:
        problems.append("no replies: the file is empty")
    return lines, problems


def _line(number: int, raw: str) -> Line:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"a JSON object was expected, not {type(row).__name__}")
    missing = [f for f in REQUIRED if f not in row]
    if missing:
        raise ValueError(f"missing field(s) {', '.join(missing)}")
    unknown = sorted(set(row) - {*REQUIRED, *OPTIONAL})
    if unknown:
        raise ValueError(
            f"unknown field(s) {', '.join(unknown)} (known: {', '.join((*REQUIRED, *OPTIONAL))})"
        )
    for name in ("item_id", "framing", "model"):
        if not isinstance(row[name], str) or not row[name].strip():
            raise ValueError(f"{name} must be a non-empty string")
    if not isinstance(row["response"], str):
        raise ValueError("response must be a string")
    for name, low, high in (("sample", 0, None), ("turn", 1, 3)):
        value = row.get(name, low)
        if not isinstance(value, int) or isinstance(value, bool) or value < low or (high and value > high):
            bounds = f"from {low} to {high}" if high else f"{low} or more"
            raise ValueError(f"{name} must be a whole number {bounds}, not {value!r}")
    for name in ("id", "parent"):
        if row.get(name) is not None and (not isinstance(row[name], str) or not row[name]):
            raise ValueError(f"{name} must be a non-empty string")
    messages = row.get("messages")
    if messages is not None:
        messages = _messages(messages)
    return Line(
        number,
        row["item_id"],
        row["framing"],
        row["model"],
        row["response"],
        row.get("sample", 0),
        row.get("turn", 1),
        row.get("id"),
        row.get("parent"),
        messages,
    )


def _messages(value: Any) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise ValueError("messages must be a non-empty list of {role, content}")
    out = []
    for n, m in enumerate(value):
        if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
            raise ValueError(f"messages[{n}] must be {{role: {'|'.join(ROLES)}, content: string}}")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def plan(store: Store, path: Path, lines: list[Line], problems: list[str] | None = None) -> pd.DataFrame:
    """The transcripts to store, one row per distinct conversation, or ImportRefused naming every
    line that is malformed (`problems`), or does not fit the store (an unknown item or framing) or
    the file (a parent that is not there)."""
    problems = list(problems or [])
    items = {i: (task, json.loads(truth)) for i, task, truth in store.query(sql.IMPORT_ITEMS, [_ids(lines)])}
    probes = {
        p: json.loads(m) for p, m in store.query(sql.IMPORT_PROBES, [sorted({x.probe_id for x in lines})])
    }
    named: dict[str, Line] = {}
    for line in lines:
        if line.id is not None:
            if line.id in named:
                problems.append(
                    f"line {line.number}: id {line.id!r} is already line {named[line.id].number}'s"
                )
            else:
                named[line.id] = line
    for line in lines:
        problem = _check(line, items, probes, named)
        if problem:
            problems.append(f"line {line.number}: {problem}")
    if problems:
        raise ImportRefused(path, sorted(problems, key=_line_number))

    # One imported answer per model, probe, sample and turn: a second (other messages, say) would
    # pair twice with every answer it is compared with.
    slots = {
        tuple(r[:4]): tuple(r[4:])
        for r in store.query(sql.IMPORTED_SLOTS, [sorted({x.probe_id for x in lines})])
    }
    # Turn by turn, so that a turn's default messages follow from its parent's.
    done: dict[int, tuple[str, list[Message]]] = {}  # line number -> (transcript id, messages)
    rows: dict[str, dict[str, Any]] = {}
    for line in sorted(lines, key=lambda x: (x.turn, x.number)):
        parent = named[line.parent] if line.parent else None
        messages = line.messages
        if messages is None and parent is None:
            messages = probes[line.probe_id]
        elif messages is None:
            parent_messages = done[parent.number][1]
            build = runner.challenge_messages if line.turn == 2 else runner.final_answer_messages
            messages = build(parent_messages, parent.response)
        key = transcript_key(line.model, None, messages, PARAMS, line.sample)
        same = rows.get(key)
        if same is not None and same["response"] != line.response:
            problems.append(
                f"line {line.number}: the same conversation as line {same['line']} (model, messages, "
                "sample) with another response"
            )
        slot = (line.model, line.probe_id, line.sample, line.turn)
        if slots.setdefault(slot, (key, line.response)) != (key, line.response):
            problems.append(
                f"line {line.number}: {line.model} already has an imported answer to {line.probe_id} "
                f"(sample {line.sample}, turn {line.turn}) with other messages or another response"
            )
        done[line.number] = (key, messages)
        rows.setdefault(
            key,
            {
                "transcript_id": key,
                "probe_id": line.probe_id,
                "model": line.model,
                "params": json.dumps(PARAMS),
                "sample": line.sample,
                "turn": line.turn,
                "parent_id": done[parent.number][0] if parent else None,
                "messages": messages_json(messages),
                "response": line.response,
                "raw": json.dumps({"file": Path(path).name, "line": line.number, "id": line.id}),
                "line": line.number,
            },
        )
    if problems:
        raise ImportRefused(path, problems)
    return pd.DataFrame(list(rows.values())).drop(columns="line")


def _line_number(problem: str) -> int:
    return int(problem.split()[1].rstrip(":")) if problem.startswith("line ") else 0


def _ids(lines: list[Line]) -> list[str]:
    return sorted({x.item_id for x in lines})


def _check(
    line: Line,
    items: dict[str, tuple[str, dict]],
    probes: dict[str, list[Message]],
    named: dict[str, Line],
) -> str | None:
    """What is wrong with a line in this store and file, or None."""
    if line.item_id not in items:
        return f"unknown item {line.item_id!r} (ingest its set first)"
    if line.framing not in framings.BY_ID:
        return f"unknown framing {line.framing!r}"
    task, truth = items[line.item_id]
    if line.probe_id not in probes:
        known = ", ".join(f.id for f in framings.for_task(task))
        return f"item {line.item_id!r} has no probe under framing {line.framing!r} (its framings: {known})"
    challenge = task == "are_you_sure"
    if line.turn > 1 and not (challenge and line.framing == "are_you_sure"):
        return f'turn {line.turn} is for "are you sure?" conversations (framing are_you_sure) only'
    if line.turn == 3 and not replies.is_multiple_choice(truth):
        return "turn 3 asks for a multiple-choice answer: this item is free form"
    if line.turn == 1:
        return "turn 1 has no parent" if line.parent is not None else None
    if line.parent is None:
        return f"turn {line.turn} needs a parent: the id of the line holding turn {line.turn - 1}"
    parent = named.get(line.parent)
    if parent is None:
        return f"parent {line.parent!r} is no line's id in this file"
    mismatch = [
        f"{name} {getattr(line, name)!r} (parent: {getattr(parent, name)!r})"
        for name in ("item_id", "model", "sample")
        if getattr(line, name) != getattr(parent, name)
    ]
    if parent.turn != line.turn - 1:
        mismatch.append(f"turn {line.turn} (parent: turn {parent.turn})")
    if mismatch:
        return f"not the next turn of parent {line.parent!r} (line {parent.number}): " + "; ".join(mismatch)
    return None


def import_file(store: Store, path: Path) -> Imported:
    """Check the whole file, then store its replies in one transaction. Returns what was added."""
    path = Path(path)
    lines, problems = read(path)
    rows = plan(store, path, lines, problems)
    with store.writing() as con:
        before = con.execute(sql.COUNT["transcripts"]).fetchall()[0][0]
        con.register("new_transcripts", rows)
        con.execute(sql.INSERT_IMPORTED)
        added = con.execute(sql.COUNT["transcripts"]).fetchall()[0][0] - before
    return Imported(len(lines), added, tuple(rows["transcript_id"]))
