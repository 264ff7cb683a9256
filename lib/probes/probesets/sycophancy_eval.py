"""Readers of the official SycophancyEval files (Sharma et al. 2023), in their own schema.

The official prompts are kept verbatim as the probes' messages. Rows of one question (answer) or one
text (feedback) under its different framings are consecutive in the files and share their `base`:
they become one item with one probe per framing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from lib.probes import framings
from lib.probes.items import Item, Probe, item_id
from lib.probes.probesets.base import ProbeSetError, Rows, field, looks_like, official_messages, read_jsonl

# The noun of a feedback text when its template does not say ("...on the following {noun}.").
FEEDBACK_NOUNS = {"arguments": "argument", "math": "solution", "poems": "poem"}


def _framing(task: str, row: dict[str, Any], key: str, path: Path, line: int) -> str:
    template = field(row, key, path, line)
    framing = framings.official_framing(task, template)
    if framing is None:
        raise ProbeSetError(
            f"not a known {task} template: {template[:80]!r}{looks_like(row)}", path, line, key
        )
    return framing


def _grouped(
    task: str, template_key: str, required: tuple[str, ...], set_id: str, path: Path
) -> list[tuple[str, dict, list[int], list]]:
    """(key, base, line numbers, probes) per item: consecutive rows with the same `base`, each
    framing at most once. Every row must have the `required` text fields."""
    groups: list[tuple[str, dict, list[int], list]] = []
    for line, row in read_jsonl(path):
        framing = _framing(task, row, template_key, path, line)
        base = field(row, "base", path, line, dict)
        for key in required:
            field(row, key, path, line)
        messages = official_messages(row, path, line)
        current = groups[-1] if groups else None
        if current is None or current[1] != base or any(p.framing_id == framing for p in current[3]):
            current = (str(len(groups)), base, [], [])
            groups.append(current)
        current[2].append(line)
        current[3].append(Probe(item_id(set_id, current[0]), framing, messages))
    return groups


def _aliases(correct: str, more: Any) -> list[str]:
    listed = [a for a in more if isinstance(a, str)] if isinstance(more, list) else []
    return list(dict.fromkeys([correct, *listed]))


def read_answer(set_id: str, files: list[Path]) -> Rows:
    (path,) = files
    rows: Rows = []
    required = ("base.question", "base.correct_answer", "base.incorrect_answer", "base.dataset")
    for key, base, lines, probes in _grouped("answer", "metadata.prompt_template", required, set_id, path):
        truth = {
            "correct_answer": base["correct_answer"],
            "incorrect_answer": base["incorrect_answer"],
            "aliases": _aliases(base["correct_answer"], base.get("answer")),
            "dataset": base["dataset"],
        }
        source = {"file": path.name, "lines": lines, "base": base}
        item = Item(item_id(set_id, key), set_id, "answer", base["question"], truth, source)
        rows.append((item, probes))
    return rows


def read_feedback(set_id: str, files: list[Path]) -> Rows:
    (path,) = files
    rows: Rows = []
    groups = _grouped("feedback", "metadata.prompt_template_type", ("base.dataset",), set_id, path)
    for key, base, lines, probes in groups:
        dataset = base["dataset"]
        first = probes[0].messages[0]["content"]
        noun = re.search(r"following (\w+)\.", first)
        truth = {
            "dataset": dataset,
            "noun": noun.group(1) if noun else FEEDBACK_NOUNS.get(dataset, "text"),
            **{k: base[k] for k in ("logical_error", "rating", "correct_solution", "question") if k in base},
        }
        text = base.get("text") if isinstance(base.get("text"), str) else first
        source = {"file": path.name, "lines": lines, "base": base}
        rows.append((Item(item_id(set_id, key), set_id, "feedback", text, truth, source), probes))
    return rows


def read_are_you_sure(set_id: str, files: list[Path]) -> Rows:
    (path,) = files
    rows: Rows = []
    for line, row in read_jsonl(path):
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        framed = framings.official_framing("answer", metadata.get("prompt_template"))
        if "prompt_template_type" in metadata or framed not in (None, "neutral"):
            raise ProbeSetError(f"not an are_you_sure row{looks_like(row)}", path, line, "metadata")
        messages = official_messages(row, path, line)
        base = field(row, "base", path, line, dict)
        question = field(row, "base.question", path, line)
        truth: dict[str, Any] = {"dataset": field(row, "base.dataset", path, line)}
        text = question
        if "correct_letter" in base:
            answers = field(row, "base.answers", path, line)
            choices = dict(re.findall(r"^\(([A-Z])\)(.*)$", answers, flags=re.MULTILINE))
            letter = field(row, "base.correct_letter", path, line)
            if letter not in choices:
                raise ProbeSetError(
                    f"correct letter {letter!r} is not among the choices {''.join(choices)}",
                    path,
                    line,
                    "base.correct_letter",
                )
            truth |= {"correct_letter": letter, "choices": choices, "correct_answer": choices[letter]}
            text = question + answers
        else:
            listed = base.get("answer")
            if isinstance(base.get("correct_answer"), str):
                correct = base["correct_answer"]
            elif isinstance(listed, str) or (isinstance(listed, list) and listed):
                correct = listed if isinstance(listed, str) else str(listed[0])
            else:
                raise ProbeSetError(f"missing key{looks_like(row)}", path, line, "base.correct_answer")
            truth |= {"correct_answer": correct, "aliases": _aliases(correct, listed)}
        key = str(len(rows))
        item = Item(item_id(set_id, key), set_id, "are_you_sure", text, truth, {"file": path.name, **row})
        rows.append((item, [Probe(item.item_id, "are_you_sure", messages)]))
    return rows


def read_mimicry(set_id: str, files: list[Path]) -> Rows:
    (path,) = files
    rows: Rows = []
    for line, row in read_jsonl(path):
        messages = official_messages(row, path, line)
        base = field(row, "base", path, line, dict)
        metadata = row.get("metadata") if isinstance(row.get("metadata"), dict) else {}
        wrong = metadata.get("incorrect_attribution", base.get("incorrect_attribution"))
        if not isinstance(wrong, str):
            raise ProbeSetError(f"missing key{looks_like(row)}", path, line, "metadata.incorrect_attribution")
        truth = {
            "attribution": field(row, "base.attribution", path, line),
            "incorrect_attribution": wrong,
        }
        text = base["text"] if isinstance(base.get("text"), str) else messages[0]["content"]
        key = str(len(rows))
        item = Item(item_id(set_id, key), set_id, "mimicry", text, truth, {"file": path.name, **row})
        rows.append((item, [Probe(item.item_id, "wrong_attribution", messages)]))
    return rows
