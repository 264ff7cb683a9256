"""The transcript store: one DuckDB file (by default data/sycoscope.duckdb, or $SYCOSCOPE_DB).

Concurrency. DuckDB lets one process hold a file for writing, or several hold it read-only, never
both. The dashboard (many sessions, one process, plus a background run thread) and command-line
runs in other processes all share the file, so no connection outlives the work at hand: every
operation opens the file, works, and closes it, inside an advisory lock on `<file>.lock`
(fcntl.flock, one open file description per operation, so threads of one process exclude each
other too). The one exception is the read lease (_ReadLease): reads that follow each other closely
share one read-only database, given up the moment a writer waits or after 0.1 s without reads.
- readers take the lock shared and open the file read-only: any number of them read at once;
- a writer takes it exclusive, opens read-write, does its work in one transaction and closes,
  which checkpoints, so that the next reader finds no write-ahead log to replay;
- writers go first: flock has no queue, so readers that keep overlapping would hold a shared lock
  forever and starve a writer. Everyone passes a second lock, `<file>.gate`, to take the first:
  readers shared, writers exclusive and held while they wait, so a waiting writer stops new readers
  at the gate and gets the lock as soon as the readers already in finish.
Waiting is bounded: an operation that cannot get the lock within `timeout` seconds (a run in
another process holds it for milliseconds per transcript, so this means something is stuck)
raises StoreBusy naming the file. Writes are small (one transcript, one grade batch, one ingest)
so a reader never waits long, and a killed writer loses only its open transaction: the lock dies
with its process and DuckDB's write-ahead log keeps what was committed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from lib.paths import DEFAULT_STORE
from lib.probes.items import messages_json
from lib.probes.probesets.base import ProbeSet, Rows
from lib.store import sql


class StoreError(Exception):
    """A store problem a person can act on: the message names the file and what to do."""


class StoreBusy(StoreError):
    pass


def default_path() -> Path:
    return Path(os.environ.get("SYCOSCOPE_DB") or DEFAULT_STORE)


def transcript_key(
    model: str,
    base_url: str | None,
    messages: Sequence[dict[str, str]],
    params: dict[str, Any],
    sample: int,
) -> str:
    """The cache key of a transcript: the same request (provider:model, server, exact messages,
    generation parameters, sample index) always gives the same key, and so is sent once."""
    blob = json.dumps(
        [model, base_url or "", messages_json(list(messages)), params, sample],
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@contextmanager
def _flock(path: Path, exclusive: bool, timeout: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreBusy(
                        f"store {path.with_suffix('')} is busy: another process has held it for "
                        f"more than {timeout:.0f} s; wait for it or stop it"
                    ) from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _writer_waiting(gate: Path) -> bool:
    """Whether a writer holds the gate, i.e. waits for the lock or writes."""
    fd = os.open(gate, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


class _ReadLease:
    """A read-only database kept open across the reads of one process that follow each other
    closely (a page makes several), since opening the file is most of a small query's time.

    It holds the shared lock like any reader, so it must not keep a writer out: a writer of this
    process closes it first (`drain`), and a writer of another process, which holds the gate while
    it waits, makes readers pass the lease by and the lease close as soon as its reads end. An
    idle lease closes after IDLE seconds, so that a writer never waits on a process that stopped
    reading."""

    IDLE = 0.1

    def __init__(self, store: Store):
        self.store = store
        self.cond = threading.Condition()
        self.anchor: duckdb.DuckDBPyConnection | None = None
        self.held: ExitStack | None = None
        self.active = 0
        self.last_used = 0.0

    def acquire(self) -> duckdb.DuckDBPyConnection | None:
        """A cursor on the open database, opening it if needed; None when a writer waits."""
        with self.cond:
            if _writer_waiting(self.store.gate_path):
                self._close_when_idle()
                return None
            if self.anchor is None:
                held = ExitStack()
                try:
                    held.enter_context(self.store._locked(exclusive=False))
                    self.anchor = self.store._connect(read_only=True)
                except BaseException:
                    held.close()
                    raise
                self.held = held
            self.active += 1
            return self.anchor.cursor()

    def release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.close()
        with self.cond:
            self.active -= 1
            self.last_used = time.monotonic()
            if self.active == 0:
                self.cond.notify_all()
                timer = threading.Timer(self.IDLE * 1.5, self._close_if_idle)
                timer.daemon = True
                timer.start()

    def drain(self) -> None:
        """Wait for this process's reads through the lease to end, then close it."""
        with self.cond:
            self.cond.wait_for(lambda: self.active == 0, timeout=self.store.timeout)
            self._close_when_idle()

    def _close_if_idle(self) -> None:
        with self.cond:
            if time.monotonic() - self.last_used >= self.IDLE:
                self._close_when_idle()

    def _close_when_idle(self) -> None:
        if self.active == 0 and self.anchor is not None:
            self.anchor.close()
            self.anchor = None
            if self.held is not None:
                self.held.close()
                self.held = None


_leases: dict[Path, _ReadLease] = {}
_leases_lock = threading.Lock()


class Store:
    def __init__(self, path: Path | str | None = None, timeout: float = 60.0):
        self.path = Path(path) if path is not None else default_path()
        self.timeout = timeout
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.gate_path = self.path.with_name(self.path.name + ".gate")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prepare()

    # -- connections ----------------------------------------------------------------------
    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=read_only)
            except duckdb.IOException as e:
                text = str(e)
                if "not a valid DuckDB database" in text or "database file" in text and "exists" in text:
                    raise StoreError(
                        f"{self.path} is not a DuckDB store ({text.splitlines()[0]}). "
                        "Point SYCOSCOPE_DB at another file or move this one away."
                    ) from None
                # Someone outside our lock (a duckdb shell, say) holds the file: wait, bounded.
                if "lock" not in text.lower() or time.monotonic() > deadline:
                    raise StoreError(f"cannot open store {self.path}: {text}") from None
                time.sleep(0.05)

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        """The lock, taken through the gate (see the module docstring)."""
        with ExitStack() as held:
            with _flock(self.gate_path, exclusive, self.timeout):
                held.enter_context(_flock(self.lock_path, exclusive, self.timeout))
            yield

    @property
    def _lease(self) -> _ReadLease:
        with _leases_lock:
            key = self.path.resolve()
            if key not in _leases:
                _leases[key] = _ReadLease(self)
            return _leases[key]

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cursor = self._lease.acquire()
        if cursor is not None:
            try:
                yield cursor
            finally:
                self._lease.release(cursor)
            return
        with self._locked(exclusive=False):  # a writer waits: queue behind it at the gate
            con = self._connect(read_only=True)
            try:
                yield con
            finally:
                con.close()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction: committed if the block ends normally, rolled back if it raises."""
        self._lease.drain()
        with self._locked(exclusive=True):
            con = self._connect(read_only=False)
            try:
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                con.execute("COMMIT")
            finally:
                con.close()

    def query(self, statement: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.reading() as con:
            return con.execute(statement, params or []).fetchall()

    def frame(self, statement: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.reading() as con:
            return con.execute(statement, params or []).df()

    def scalar(self, statement: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(statement, params)
        return rows[0][0] if rows else None

    # -- schema -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Create the schema in a new file; migrate an older one; refuse a newer one."""
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.reading() as con:
                tables = {r[0] for r in con.execute(sql.TABLES).fetchall()}
                version = con.execute(sql.GET_VERSION).fetchone() if "meta" in tables else None
            if version is not None and int(version[0]) == sql.SCHEMA_VERSION:
                return
            if version is None and tables:
                raise StoreError(
                    f"{self.path} is a DuckDB file but not a Sycoscope store (no schema version); "
                    "point SYCOSCOPE_DB at another file"
                )
            if version is not None and int(version[0]) > sql.SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} has schema version {version[0]}, newer than this Sycoscope "
                    f"({sql.SCHEMA_VERSION}): update Sycoscope, or point SYCOSCOPE_DB at another file"
                )
        with self.writing() as con:
            row = con.execute(sql.GET_VERSION).fetchone() if self._has_meta(con) else None
            current = int(row[0]) if row else sql.SCHEMA_VERSION
            while current < sql.SCHEMA_VERSION:
                for statement in sql.MIGRATIONS[current]:
                    con.execute(statement)
                current += 1
            for statement in sql.SCHEMA:
                con.execute(statement)
            con.execute(sql.SET_VERSION, [str(sql.SCHEMA_VERSION)])

    @staticmethod
    def _has_meta(con: duckdb.DuckDBPyConnection) -> bool:
        return "meta" in {r[0] for r in con.execute(sql.TABLES).fetchall()}

    # -- ingest -----------------------------------------------------------------------------
    def ingest(self, probe_set: ProbeSet, rows: Rows) -> tuple[int, int]:
        """Put a set's items and probes (probe_set.load()) in the store in one transaction; what is
        there stays. Returns how many items and probes were new."""
        set_id = probe_set.set_id
        items = pd.DataFrame(
            [
                (
                    item.item_id,
                    item.set_id,
                    item.task,
                    position,
                    item.text,
                    json.dumps(item.truth, ensure_ascii=False),
                    json.dumps(item.source, ensure_ascii=False),
                )
                for position, (item, _) in enumerate(rows)
            ],
            columns=["item_id", "set_id", "task", "position", "text", "truth", "source"],
        )
        probes = pd.DataFrame(
            [
                (p.probe_id, p.item_id, set_id, p.framing_id, messages_json(p.messages))
                for _, probes in rows
                for p in probes
            ],
            columns=["probe_id", "item_id", "set_id", "framing_id", "messages"],
        )
        with self.writing() as con:
            before = self._counts(con, set_id)
            con.execute(
                sql.UPSERT_SET,
                [set_id, probe_set.task, probe_set.title, probe_set.source, probe_set.origin],
            )
            con.register("new_items", items)
            con.register("new_probes", probes)
            con.execute(sql.INSERT_ITEMS)
            con.execute(sql.INSERT_PROBES)
            after = self._counts(con, set_id)
        return after[0] - before[0], after[1] - before[1]

    @staticmethod
    def _counts(con: duckdb.DuckDBPyConnection, set_id: str) -> tuple[int, int]:
        return con.execute(sql.SET_SIZE, [set_id, set_id]).fetchone()

    # -- counts -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        with self.reading() as con:
            sets = con.execute(sql.SET_COUNTS).fetchall()
            counts = {name: con.execute(q).fetchone()[0] for name, q in sql.COUNT.items()}
        return {
            "sets": {s[0]: {"task": s[1], "items": s[5], "probes": s[6]} for s in sets},
            **counts,
        }
