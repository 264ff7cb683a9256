"""The metric tables, kept beside the store until its data change.

Computing the tables reads every answer and grade (lib.measure.metrics.tables: seconds at a million
transcripts); the tables themselves are a few hundred rows. So the first reader after a change
computes them and leaves them in `<store>.tables/<key>/` as Parquet files, and every later reader, in
any process and after a restart, reads those instead. The key is the store's data version (counts and
latest times of transcripts, grades and sets: lib/store/sql.py DATA_VERSION), the current grader versions
with the chosen judge, and the source of the code that makes the tables, so new data, a new grader
version or changed metric code each make a new entry. Only the newest few entries are kept.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from functools import cache
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from lib.measure import metrics
from lib.measure.grading import current_graders
from lib.store import Store, sql

KEEP = 8


@cache
def _code() -> str:
    """The source of what makes the tables: a change to it must not reuse old tables."""
    return hashlib.sha256(b"".join(Path(m.__file__).read_bytes() for m in (metrics, sql))).hexdigest()


def folder(store: Store) -> Path:
    return store.path.with_name(store.path.name + ".tables")


def key(store: Store, judge: str | None) -> str:
    version = [str(v) for v in store.query(sql.DATA_VERSION)[0]]
    blob = json.dumps([version, current_graders(judge), _code()])
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def tables(store: Store, judge: str | None = None) -> dict[str, pd.DataFrame]:
    """lib.measure.metrics.tables(store, judge), from the cache when the store has not changed since."""
    entry = folder(store) / key(store, judge)
    if entry.is_dir():
        try:
            return {name: pq.read_table(entry / f"{name}.parquet").to_pandas() for name in metrics.TABLES}
        except OSError:
            pass  # pruned by another process while we read: compute again
    made = metrics.tables(store, judge)
    if not store.read_only:  # nothing is written beside a store open read-only
        _save(entry, made)
    return made


def _save(entry: Path, made: dict[str, pd.DataFrame]) -> None:
    """Write the entry whole or not at all (a temporary folder renamed), then drop the oldest ones.
    A cache that cannot be written (read-only disk) only costs speed."""
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=entry.parent, prefix=".partial-"))
        for name, frame in made.items():
            frame.to_parquet(partial / f"{name}.parquet", index=False)
        try:
            os.rename(partial, entry)
        except OSError:  # another process wrote the same entry first
            shutil.rmtree(partial, ignore_errors=True)
        entries = sorted(
            (p for p in entry.parent.iterdir() if not p.name.startswith(".")), key=lambda p: p.stat().st_mtime
        )
        for old in entries[:-KEEP]:
            shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass
