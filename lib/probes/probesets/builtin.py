"""Built-in sets read from the reference tables the project writes itself (data/reference/):
factual questions in the four answer framings and on the pressure ladder, and short texts in the five
feedback framings."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from lib.paths import REFERENCE
from lib.probes import framings
from lib.probes.items import Item, Probe, item_id, user
from lib.probes.probesets import textfile
from lib.probes.probesets.base import ProbeSetError, Rows, field, read_jsonl
from lib.probes.probesets.render import answer_probes, feedback_probes

FACTS = REFERENCE / "facts"
FEEDBACK_TEXTS = REFERENCE / "feedback_texts.jsonl"
FACT_COLUMNS = ("question", "answer", "aliases", "incorrect_answer")
NOUNS = {"math": "solution", "arguments": "argument"}
# The field of each fact table, for the pressure ladder's authority rung ("As a professor of ...").
LADDER_FIELDS = {
    "books": "literature",
    "capitals": "geography",
    "elements": "chemistry",
    "music": "music",
    "paintings": "art history",
    "space": "astronomy",
}


def read_facts(set_id: str, files: list[Path], folder: Path = FACTS) -> Rows:
    """Every row of every table in `folder`: question, answer, aliases ("a|b|c") and a plausible
    wrong answer."""
    rows: Rows = []
    for table in sorted(folder.glob("*.csv")):
        with table.open(encoding=textfile.ENCODING, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in FACT_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise ProbeSetError("missing column", table, 1, missing[0])
            row = 0  # the item's key counts rows, not lines: a blank line moves no item's id
            for record in reader:
                line = reader.line_num
                if not any(v.strip() if isinstance(v, str) else v for v in record.values()):
                    continue  # a line of blanks (an empty line the csv module skips itself)
                row += 1
                for column in ("question", "answer", "incorrect_answer"):
                    if not (record.get(column) or "").strip():
                        raise ProbeSetError("empty value", table, line, column)
                question, correct = record["question"], record["answer"]
                aliases = [a for a in (record["aliases"] or "").split("|") if a]
                truth = {
                    "correct_answer": correct,
                    "incorrect_answer": record["incorrect_answer"],
                    "aliases": list(dict.fromkeys([correct, *aliases])),
                    "dataset": f"facts_{table.stem}",
                }
                item = Item(
                    item_id(set_id, f"{table.stem}-{row}"),
                    set_id,
                    "answer",
                    question,
                    truth,
                    {"file": f"{folder.name}/{table.name}", "line": line},
                )
                rows.append(
                    (item, answer_probes(item.item_id, question, correct, record["incorrect_answer"]))
                )
    return rows


def read_ladder(set_id: str, files: list[Path], folder: Path = FACTS) -> Rows:
    """The fact tables' rows (read_facts) as pressure-ladder items: each question under every rung of
    LADDER_RUNGS. A table needs a field in LADDER_FIELDS, which the authority rung names."""
    rows: Rows = []
    for item, _ in read_facts(set_id, files, folder):
        table = item.truth["dataset"].removeprefix("facts_")
        if table not in LADDER_FIELDS:
            raise ProbeSetError(
                f"no field for the pressure ladder's authority rung: add {table!r} to LADDER_FIELDS in "
                "lib/probes/probesets/builtin.py",
                folder / f"{table}.csv",
            )
        truth = item.truth | {"field": LADDER_FIELDS[table]}
        probes = ladder_probes(item.item_id, item.text, truth)
        rows.append((replace(item, task="ladder", truth=truth), probes))
    return rows


def ladder_probes(item_id: str, question: str, truth: dict) -> list[Probe]:
    """The probes of one fact, a rung each, in LADDER_RUNGS order: each framing's earlier messages
    (if any), then its user message."""
    values = {"question": question, "field": truth["field"]}
    values |= {k: truth[k] for k in ("correct_answer", "incorrect_answer")}
    probes = []
    for rung in framings.LADDER_RUNGS:
        f = framings.get(rung)
        earlier = tuple({"role": role, "content": text.format(**values)} for role, text in f.earlier)
        probes.append(Probe(item_id, rung, (*earlier, user(f.template.format(**values)))))
    return probes


def read_feedback_texts(set_id: str, files: list[Path], path: Path = FEEDBACK_TEXTS) -> Rows:
    """Math solutions (some with a planted error, described in the truth) and short arguments, each
    with a named fallacy."""
    rows: Rows = []
    counts: dict[str, int] = {}
    for line, record in read_jsonl(path):
        dataset = field(record, "dataset", path, line)
        if dataset not in NOUNS:
            raise ProbeSetError(f"expected one of {', '.join(NOUNS)}", path, line, "dataset")
        text = field(record, "text", path, line)
        truth = {"dataset": dataset, "noun": NOUNS[dataset]}
        if dataset == "math":
            error = record.get("planted_error")
            truth |= {
                "correct_answer": field(record, "correct_answer", path, line),
                "has_error": error is not None,
                "planted_error": error,
            }
        else:
            truth["logical_error"] = field(record, "logical_error", path, line)
        counts[dataset] = counts.get(dataset, 0) + 1
        key = f"{dataset}-{counts[dataset]}"
        item = Item(item_id(set_id, key), set_id, "feedback", text, truth, {"file": path.name, "line": line})
        rows.append((item, feedback_probes(item.item_id, truth["noun"], text)))
    return rows
