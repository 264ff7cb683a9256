"""What the dashboard pages read from the store: pure functions Store -> DataFrame (or a value).

Every query filters, aggregates or pages in SQL (lib/sql.py), so a store of a million transcripts
never comes whole into memory. Grades count only when their "grader@version" is in `graders`, the
current grader versions, so re-graded transcripts show their new verdict.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from lib.measure import metrics, tablecache
from lib.probes import framings
from lib.probes.items import Message
from lib.store import Store, sql

PAGE_SIZE = 25
GRADE_FILTERS = ("correct", "incorrect", "ungraded")
BASELINES = [f.id for f in framings.FRAMINGS if f.is_baseline]
EXPORT_FORMATS = ("parquet", "csv", "jsonl")
ExportFormat = Literal["parquet", "csv", "jsonl"]


@dataclass(frozen=True)
class Card:
    """One task's key number on the Overview: the highest value among the models measured."""

    key: str
    title: str
    what: str  # what the number means
    value: float | None  # None: nothing measured yet
    percent: bool  # a rate (shown as a percentage) or a score
    model: str | None = None
    set_id: str | None = None
    n: int = 0
    n_models: int = 0
    note: str = ""


@dataclass(frozen=True)
class Filters:
    """The transcript table's filters; None means any."""

    model: str | None = None
    set_id: str | None = None
    framing_id: str | None = None
    search: str | None = None  # case-insensitive, in the reply or the question
    flips_only: bool = False  # framed answers that are wrong where the baseline answer was right
    grade: str | None = None  # one of GRADE_FILTERS

    @property
    def by_grade(self) -> bool:
        """Whether the filters read grades (a page without such filters reads only the grades it shows)."""
        return self.flips_only or self.grade is not None

    def params(self, graders: list[str]) -> dict[str, Any]:
        if self.grade is not None and self.grade not in GRADE_FILTERS:
            raise ValueError(f"grade filter {self.grade!r}: expected one of {', '.join(GRADE_FILTERS)}")
        return {
            "model": self.model,
            "set_id": self.set_id,
            "framing_id": self.framing_id,
            "search": self.search or None,
            "flips_only": self.flips_only,
            "grade": self.grade,
            "graders": list(graders),
            "baselines": BASELINES,
        }


def data_version(store: Store) -> tuple:
    """A cheap fingerprint of the store's contents: it changes when transcripts, grades or sets do,
    so cached queries keyed on it show new data."""
    return tuple(str(v) for v in store.query(sql.DATA_VERSION)[0])


def models(store: Store, set_id: str | None = None) -> list[str]:
    """The models with transcripts (of one set, if given)."""
    if set_id is None:
        return [r[0] for r in store.query(sql.MODELS)]
    return [r[0] for r in store.query(sql.MODELS_OF_SET, {"set_id": set_id})]


def sets(store: Store) -> pd.DataFrame:
    """Every set with its task, title, source and counts of items and probes."""
    return store.frame(sql.SET_COUNTS)


def n_pages(total: int, page_size: int = PAGE_SIZE) -> int:
    return max(1, math.ceil(total / page_size))


def count_transcripts(store: Store, filters: Filters, graders: list[str]) -> int:
    params = filters.params(graders)
    if filters.by_grade:
        return int(store.scalar(sql.BROWSE_COUNT, params))
    return int(store.scalar(sql.BROWSE_COUNT_UNGRADED, {k: params[k] for k in _MATCHING}))


def transcripts(
    store: Store, filters: Filters, graders: list[str], page: int = 0, page_size: int = PAGE_SIZE
) -> pd.DataFrame:
    """One page (0-based) of answers under the filters, texts shortened, each with its grade, its
    baseline's grade and whether it flipped."""
    params = filters.params(graders) | {"limit": page_size, "offset": max(0, page) * page_size}
    if filters.by_grade:
        return store.frame(sql.BROWSE_PAGE, params)
    with store.reading() as con:
        keep = (*_MATCHING, "baselines", "limit", "offset")
        rows = con.execute(sql.BROWSE_PAGE_UNGRADED, {k: params[k] for k in keep}).df()
        shown = pd.concat([rows["transcript_id"], rows["baseline_id"].dropna()]).unique().tolist()
        ids = _id_params(shown)
        grades = con.execute(sql.current_grade_of(len(ids)), ids | {"graders": list(graders)}).df()
    grades = grades.set_index("transcript_id")
    correct = rows["transcript_id"].map(grades["correct"]).astype("boolean")
    baseline = rows["baseline_id"].map(grades["correct"]).astype("boolean")
    return rows.assign(
        correct=correct,
        baseline_correct=baseline,
        flip=(baseline & ~correct).fillna(False).astype(bool),  # right at baseline, wrong here
        grade=rows["transcript_id"].map(grades["grade"]),
    )[PAGE_COLUMNS]


PAGE_COLUMNS = [
    "transcript_id",
    "model",
    "set_id",
    "item_id",
    "framing_id",
    "sample",
    "turn",
    "text",
    "response",
    "correct",
    "baseline_correct",
    "flip",
    "grade",
    "created_at",
]


_MATCHING = ("model", "set_id", "framing_id", "search")  # the parameters of sql._MATCHING


def items(
    store: Store, set_id: str, search: str | None = None, page: int = 0, page_size: int = PAGE_SIZE
) -> pd.DataFrame:
    """One page of a set's items, in set order, optionally those whose text contains `search`."""
    params = {"set_id": set_id, "search": search or None, "limit": page_size, "offset": page * page_size}
    return store.frame(sql.ITEMS_PAGE, params)


def item(store: Store, item_id: str) -> dict[str, Any] | None:
    """An item with its ground truth and source row decoded, or None if the store has no such item."""
    with store.reading() as con:
        return _item(con, item_id)


def _item(con: duckdb.DuckDBPyConnection, item_id: str) -> dict[str, Any] | None:
    rows = con.execute(sql.ITEM, {"item_id": item_id}).df()
    if rows.empty:
        return None
    row = rows.iloc[0].to_dict()
    row["truth"] = json.loads(row["truth"])
    row["source"] = json.loads(row["source"]) if row["source"] else {}
    return row


def item_probes(store: Store, item_id: str) -> dict[str, list[Message]]:
    """The messages of each framing of an item, by framing id."""
    rows = store.query(sql.ITEM_PROBES, {"item_id": item_id})
    return {framing_id: json.loads(messages) for framing_id, messages in rows}


def item_answers(
    store: Store, item_id: str, graders: list[str], models: list[str] | None = None, limit: int = 500
) -> pd.DataFrame:
    """Every answer to an item (of the given models, or all), each with its grade."""
    with store.reading() as con:
        return _item_answers(con, item_id, graders, models, limit)


def _item_answers(
    con: duckdb.DuckDBPyConnection, item_id: str, graders: list[str], models: list[str] | None, limit: int
) -> pd.DataFrame:
    params = {"item_id": item_id, "models": list(models or []), "limit": limit}
    rows = con.execute(sql.ITEM_ANSWERS, params).df()
    ids = _id_params(rows["transcript_id"])
    grades = con.execute(sql.current_grade_of(len(ids)), ids | {"graders": list(graders)}).df()
    return rows.merge(grades, on="transcript_id", how="left")


def item_grades(store: Store, item_id: str, graders: list[str]) -> pd.DataFrame:
    """Each current grader's verdict on each answer to an item."""
    with store.reading() as con:
        ids = [r[0] for r in con.execute(sql.ITEM_TRANSCRIPTS, {"item_id": item_id}).fetchall()]
        return _grades_of(con, ids, graders)


def _grades_of(
    con: duckdb.DuckDBPyConnection, ids: list[str] | pd.Series, graders: list[str]
) -> pd.DataFrame:
    named = _id_params(ids)
    return con.execute(sql.grades_of(len(named)), named | {"graders": list(graders)}).df()


def _id_params(ids: Sequence[str]) -> dict[str, str]:
    """Transcript ids as the parameters $t0, $t1, ... of sql.current_grade_of and sql.grades_of."""
    return {f"t{i}": tid for i, tid in enumerate(ids)}


@dataclass(frozen=True)
class SideBySide:
    """What the Transcripts page shows of one opened answer."""

    key: dict[str, Any]  # its item, model, framing and sample
    item: dict[str, Any] | None  # the item (item)
    answers: pd.DataFrame  # the model's answers to the item, with grades (item_answers)
    grades: pd.DataFrame  # each current grader's verdict on those answers (item_grades)


def side_by_side(store: Store, transcript_id: str, graders: list[str]) -> SideBySide | None:
    """An answer with what is set beside it: its item and the same model's other answers to it, read
    in one visit to the store (each visit opens the file). None if there is no such transcript."""
    with store.reading() as con:
        rows = con.execute(sql.ANSWER_KEY, {"transcript_id": transcript_id}).df()
        if rows.empty:
            return None
        key = rows.iloc[0].to_dict()
        answers = _item_answers(con, key["item_id"], graders, [key["model"]], 500)
        grades = _grades_of(con, answers["transcript_id"].tolist(), graders)
        return SideBySide(key, _item(con, key["item_id"]), answers, grades)


def answer(answers: pd.DataFrame, model: str, framing_id: str, sample: int = 0) -> dict[str, Any] | None:
    """From item_answers: one model's answer under one framing (the first sample given, else the
    first there is), or None."""
    rows = answers[(answers["model"] == model) & (answers["framing_id"] == framing_id)]
    if rows.empty:
        return None
    chosen = rows[rows["sample"] == sample]
    row = (chosen if not chosen.empty else rows).iloc[0].to_dict()
    row["messages"] = json.loads(row["messages"])
    return row


def baseline_of(framing_id: str) -> str:
    """The framing a framed answer is compared against."""
    return framings.baseline_for(framings.get(framing_id).task).id


def health(store: Store, graders: list[str]) -> dict[str, Any]:
    """Counts that say whether the store is in order, with the file's size."""
    row = store.frame(sql.HEALTH, {"graders": list(graders)}).iloc[0].to_dict()
    size = store.path.stat().st_size if store.path.exists() else 0
    return {"path": str(store.path), "size_mb": round(size / 1e6, 2), **store.stats(), **row}


def recent_errors(store: Store, limit: int = 20) -> pd.DataFrame:
    return store.frame(sql.ERRORS_RECENT, {"limit": limit})


def export(
    store: Store,
    path: Path,
    fmt: ExportFormat,
    graders: list[str],
    set_id: str | None = None,
    model: str | None = None,
    batch_rows: int = 50_000,
) -> int:
    """Write the answers (of a set and a model, or all) with their grades to `path`, batch by batch
    so that memory stays small whatever the store holds. Returns the number of rows written."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"export format {fmt!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    params = {"graders": list(graders), "set_id": set_id, "model": model}
    rows = 0
    with store.reading() as con:
        reader = con.sql(sql.EXPORT, params=params).to_arrow_reader(batch_rows)
        with _writer(path, fmt, reader.schema) as write:
            for batch in reader:
                write(batch)
                rows += batch.num_rows
    return rows


class _writer:
    """A context manager giving a function that appends one record batch to the file."""

    def __init__(self, path: Path, fmt: ExportFormat, schema: pa.Schema):
        self.path, self.fmt, self.schema = path, fmt, schema

    def __enter__(self):
        if self.fmt == "parquet":
            self._sink = pq.ParquetWriter(self.path, self.schema)
            return self._sink.write_batch
        if self.fmt == "csv":
            self._sink = pacsv.CSVWriter(self.path, self.schema)
            return self._sink.write_batch
        self._sink = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in __exit__)
        return self._write_jsonl

    def _write_jsonl(self, batch: pa.RecordBatch) -> None:
        text = batch.to_pandas().to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
        if text.strip():
            self._sink.write(text if text.endswith("\n") else text + "\n")

    def __exit__(self, *exc) -> None:
        self._sink.close()


def metric_tables(store: Store, judge: str | None = None) -> dict[str, pd.DataFrame]:
    """The metric tables of lib.measure.metrics (small: one row per model x set x framing), counted in SQL and
    kept beside the store until its data change (lib.measure.tablecache)."""
    return tablecache.tables(store, judge)


def run_accuracy(store: Store, model: str, set_ids: list[str], judge: str | None = None) -> pd.DataFrame:
    """The accuracy table of one model on some sets, read with only that model's answers."""
    return metrics.tables(store, judge, model, set_ids)["accuracy"]


@dataclass(frozen=True)
class CardSpec:
    """Where a card's number comes from: a column of a metric table, on the rows of one framing."""

    key: str
    title: str
    what: str  # what the number means
    table: str  # a table of lib.measure.metrics.tables
    framing_id: str | None  # only this framing's rows; None: all rows
    column: str  # the value
    percent: bool  # a rate (shown as a percentage) or a score
    n_column: str  # how many answers or pairs it counts


CARDS = (
    CardSpec(
        "answer",
        "Answer",
        "accuracy drop when the user suggests a wrong answer",
        "accuracy",
        "suggests_wrong",
        "drop",
        True,
        "n_paired",
    ),
    CardSpec(
        "are_you_sure",
        "Are you sure?",
        'first answers changed when the user asks "are you sure?"',
        "are_you_sure",
        None,
        "change_rate",
        True,
        "n_change_known",
    ),
    CardSpec(
        "feedback",
        "Feedback",
        "how much more positive the comment is when the user likes the text",
        "feedback",
        "likes",
        "value",
        False,
        "n_paired",
    ),
    CardSpec(
        "mimicry",
        "Mimicry",
        "replies that repeat the user's wrong attribution",
        "mimicry",
        None,
        "accepts_rate",
        True,
        "n",
    ),
    CardSpec(
        "false_arithmetic",
        "False arithmetic",
        "answers agreeing with a false sum the user agrees with",
        "opinion",
        "agrees_false_claim",
        "agree_rate",
        True,
        "n",
    ),
    CardSpec(
        "opinion",
        "Opinion",
        "answers matching the view the user states",
        "opinion",
        "states_view",
        "agree_rate",
        True,
        "n",
    ),
)


def task_cards(tables: dict[str, pd.DataFrame]) -> list[Card]:
    """The Overview's cards, one per task, each with its key metric for the most sycophantic model
    (the highest value), from metric_tables."""
    cards = []
    for spec in CARDS:
        rows = tables[spec.table]
        if spec.framing_id is not None:
            rows = rows[rows["framing_id"] == spec.framing_id]
        rows = rows[rows[spec.column].notna()] if spec.column in rows else rows.iloc[0:0]
        if rows.empty:
            cards.append(Card(spec.key, spec.title, spec.what, None, spec.percent))
            continue
        top = rows.loc[rows[spec.column].astype(float).idxmax()]
        cards.append(
            Card(
                key=spec.key,
                title=spec.title,
                what=spec.what,
                value=float(top[spec.column]),
                percent=spec.percent,
                model=str(top["model"]),
                set_id=str(top["set_id"]),
                n=int(top[spec.n_column]),
                n_models=int(rows["model"].nunique()),
                note=str(top["measure"]) if "measure" in rows else "",
            )
        )
    return cards
