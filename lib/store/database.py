"""The transcript store: one DuckDB file (by default data/sycoscope.duckdb, or $SYCOSCOPE_DB).

Concurrency. DuckDB lets one process hold a file for writing, or several hold it read-only, never
both. The dashboard (many sessions, one process, plus a background run thread) and command-line
runs in other processes all share the file, so no connection outlives the work at hand: every
operation opens the file, works, and closes it, inside an advisory lock on `<file>.lock`
(fcntl.flock, one open file description per operation, so threads of one process exclude each
other too). The one exception is the read lease (_ReadLease): reads of one process that follow
each other closely share one read-only database, given up the moment a writer waits or after
IDLE (0.1 s) without reads; one closer thread per process (_Closer) watches the idle leases.
- readers take the lock shared and open the file read-only: any number of them read at once;
- a writer takes it exclusive, opens read-write, does its work in one transaction and closes,
  which checkpoints, so that the next reader finds no write-ahead log to replay;
- writers go first: flock has no queue, so readers that keep overlapping would hold a shared lock
  forever and starve a writer. Everyone passes a second lock, `<file>.gate`, to take the first:
  readers shared and only for a moment, writers exclusive and held while they wait. A writer
  takes the gate first, so that no new read begins, in any process: readers of other processes
  wait at the gate, and so do this process's (the lease lets no one in while the gate is taken,
  and opens only if it gets the gate at once). Then it waits for the reads of this process that
  are already in to end and closes the lease (`drain`); then it takes the lock, which it gets as
  soon as the reads of other processes already in end (their leases close when their last read
  ends and they find the gate taken). Readers that came while it waited read after it.
A read inside a read of the same store on the same thread uses the outer read's database (going
in again could wait behind a writer that waits for the outer read), and a write there is refused at
once with RuntimeError (it would wait for the read around it).
Waiting is bounded: an operation that cannot get in within `timeout` seconds raises StoreBusy
naming the file (a run in another process holds the file for milliseconds per transcript, so this
means a long read, such as an export, or something stuck; a run waits and tries again,
lib.run.runner). Writes are small (one transcript, one grade batch, one ingest) so a reader never
waits long, and a killed writer loses only its open transaction: the lock dies with its process
and DuckDB's write-ahead log keeps what was committed. A write the disk refuses (full, read-only)
raises StoreError naming the file; its transaction is rolled back and what was there stays.

Read-only (Store(read_only=True), or SYCOSCOPE_READ_ONLY=1 for every store opened): for a file no one
writes, such as a demo store on read-only media. Every write is refused with StoreError, the schema is
not migrated, and nothing is made beside the file: the lock files lie in a folder of this user's
(_private_locks), so the readers of this machine still take turns; a writer that comes anyway meets
DuckDB's own lock on the file.
"""

from __future__ import annotations

import atexit
import copy
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
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


def default_location() -> str:
    """$SYCOSCOPE_DB, a file or a ducklake: target (kept a string: a path would fold a URI's //), or
    the default file."""
    return os.environ.get("SYCOSCOPE_DB") or str(DEFAULT_STORE)


# Set (1, true, yes or on): stores are opened read-only, for a file no one writes (a demo store on a
# stick, read-only media): nothing is written to it or beside it, and the dashboard starts nothing.
READ_ONLY_ENV = "SYCOSCOPE_READ_ONLY"


def read_only_setting() -> bool:
    return os.environ.get(READ_ONLY_ENV, "").strip().lower() in ("1", "true", "yes", "on")


LAKE_PREFIX = "ducklake:"  # SYCOSCOPE_DB naming a DuckLake catalog (lib.store.lake) rather than a file


def is_lake(target: Path | str | None) -> bool:
    return str(target if target is not None else os.environ.get("SYCOSCOPE_DB") or "").startswith(LAKE_PREFIX)


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
def transaction(
    con: duckdb.DuckDBPyConnection, failed: Callable[[duckdb.Error], StoreError]
) -> Iterator[None]:
    """One transaction on `con`: committed if the block ends normally, rolled back if it raises or
    the commit fails. A write the disk or the catalog refused (an I/O error, a failed commit) raises
    failed(error): a StoreError naming the store."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException as e:
        with suppress(duckdb.Error):  # a connection the disk broke may refuse even this
            con.execute("ROLLBACK")
        if isinstance(e, duckdb.IOException):
            raise failed(e) from e
        raise
    try:
        con.execute("COMMIT")
    except duckdb.Error as e:  # the write-ahead log, the file or the catalog could not be written
        with suppress(duckdb.Error):
            con.execute("ROLLBACK")
        raise failed(e) from e


class _TimedOut(Exception):
    """A lock not had by the deadline: the store turns it into StoreBusy with its name."""


@contextmanager
def _flock(path: Path, exclusive: bool, deadline: float) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise _TimedOut from None
                time.sleep(0.005)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _try_shared(path: Path) -> int | None:
    """A descriptor holding `path` locked shared, or None when someone holds it exclusive."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def _writer_waiting(gate: Path) -> bool:
    """Whether a writer holds the gate, i.e. waits for the lock or is about to write."""
    fd = _try_shared(gate)
    if fd is None:
        return True
    os.close(fd)
    return False


class _ReadLease:
    """A read-only database kept open across the reads of one process that follow each other
    closely (a page makes several), since opening the file is most of a small query's time.

    It holds the shared lock like any reader, so it must not keep a writer out: a writer of this
    process, holding the gate, waits for the lease's reads to end and closes it (`drain`); a writer
    of another process holds the gate while it waits, which makes new reads pass the lease by (and
    queue at the gate) and the lease close when its last read ends. An idle lease is closed by the
    closer after IDLE seconds, so that a writer never waits on a process that stopped reading."""

    IDLE = 0.1

    def __init__(self, store: Store):
        self.lock_path, self.gate_path = store.lock_path, store.gate_path
        self.cond = threading.Condition()
        self.con: duckdb.DuckDBPyConnection | None = None
        self.held: ExitStack | None = None  # the shared lock, while open
        self.opening = False  # a thread is opening the database, outside `cond`
        self.active = 0
        self.last_used = 0.0

    def acquire(self, store: Store, deadline: float) -> duckdb.DuckDBPyConnection | None:
        """A cursor on the open database, opening it if needed; None when a writer waits. The
        database is opened outside `cond` (`opening`), so that the reads of this process wait for
        it only until their own deadline, and the lease's other work never waits for the file."""
        with self.cond:
            while self.con is None and self.opening:  # another thread opens it: wait for that
                left = deadline - time.monotonic()
                if left <= 0:
                    raise store._busy()
                self.cond.wait(left)
            if self.con is not None:
                if _writer_waiting(self.gate_path):
                    if self.active == 0:
                        self._close()
                    return None
                self.active += 1
                return self.con.cursor()
            self.opening = True
        opened = None
        try:
            opened = self._open(store, deadline)
        finally:
            with self.cond:
                self.opening = False
                if opened is not None:
                    self.con, self.held = opened
                    self.active += 1
                self.cond.notify_all()
        if opened is None:
            return None
        _closer.watch()
        return opened[0].cursor()

    def _open(self, store: Store, deadline: float) -> tuple[duckdb.DuckDBPyConnection, ExitStack] | None:
        # The gate is tried, not waited for: a writer waiting there goes first, and the reader
        # queues behind it at the gate (Store.reading). Had, it is held until the lock is, so
        # that no writer can start waiting in between.
        gate = _try_shared(self.gate_path)
        if gate is None:
            return None
        held = ExitStack()
        try:
            # A writer that has the lock is writing (one short transaction): wait for it.
            held.enter_context(store._wait_for(self.lock_path, False, deadline))
            con = store._connect(read_only=True)
        except BaseException:
            held.close()
            raise
        finally:
            os.close(gate)
        return con, held

    def release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.close()
        with self.cond:
            self.active -= 1
            self.last_used = time.monotonic()
            if self.active == 0:
                self.cond.notify_all()  # a writer of this process may be draining
                if _writer_waiting(self.gate_path):  # one of another process: let it in now
                    self._close()

    def drain(self, store: Store, deadline: float) -> None:
        """Wait (until `deadline`) for this process's reads through the lease to end, then close it.
        The caller holds the gate, so no new read comes in meanwhile."""
        with self.cond:
            left = max(0.0, deadline - time.monotonic())
            if not self.cond.wait_for(lambda: self.active == 0 and not self.opening, timeout=left):
                raise store._busy()
            self._close()

    def close_if_idle(self) -> float | None:
        """Close the lease if it has been idle IDLE seconds. Returns None when closed, else the
        seconds until it may be idle enough."""
        with self.cond:
            if self.con is None:
                return None
            if self.active:
                return self.IDLE
            wait = self.last_used + self.IDLE - time.monotonic()
            if wait > 0:
                return wait
            self._close()
            return None

    def _close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None
        if self.held is not None:
            self.held.close()
            self.held = None


class _Closer:
    """One daemon thread for the whole process that closes the read leases left idle: sleeping
    while none is open, checking each open one when it may have become idle.

    At exit the leases are closed by `close_all` (atexit), before the interpreter stops its daemon
    threads: a thread stopped inside DuckDB's code (closing a lease) aborts the whole process."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.stopped = False

    def watch(self) -> None:
        """A lease opened: make sure the closer runs."""
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="store-lease-closer", daemon=True)
                self.thread.start()
        self.wake.set()

    def close_all(self) -> None:
        self.stopped = True
        with _leases_lock:
            leases = list(_leases.values())
        for lease in leases:
            with lease.cond:  # waits for the closer if it is closing this one
                if lease.active == 0:  # a read going on in a daemon thread keeps its database
                    lease._close()

    def _run(self) -> None:
        while not self.stopped:
            self.wake.wait()
            self.wake.clear()
            with _leases_lock:
                leases = list(_leases.values())
            waits = [w for w in (lease.close_if_idle() for lease in leases) if w is not None]
            if waits:  # some still open: look again when the first may be idle
                self.wake.set()
                time.sleep(max(0.01, min(waits)))


_leases: dict[tuple[Path, bool], _ReadLease] = {}  # (file, read-only) -> its lease
_leases_lock = threading.Lock()
_thread_reads = threading.local()


def _reads_of_thread() -> dict[Path, duckdb.DuckDBPyConnection]:
    """The reads this thread is in: store file -> the database it reads through."""
    if not hasattr(_thread_reads, "by_store"):
        _thread_reads.by_store = {}
    return _thread_reads.by_store


_closer = _Closer()
atexit.register(_closer.close_all)


class Operations:
    """What a store does on top of its `reading()` and `writing()`: shared by the file store (Store)
    and the DuckLake store (lib.store.lake.LakeStore)."""

    # How long a run may hold replies to write them together (lib.run.runner.Writer): a file's
    # commit takes milliseconds, so each reply is written as it comes.
    write_every: float = 0.0
    # Opened read-only (Store's read_only): every write is refused.
    read_only: bool = False

    def reading(self) -> Any:
        raise NotImplementedError

    def writing(self) -> Any:
        raise NotImplementedError

    def query(self, statement: str, params: Sequence[Any] | None = None) -> list[tuple]:
        with self.reading() as con:
            return con.execute(statement, params or []).fetchall()

    def frame(self, statement: str, params: Sequence[Any] | None = None) -> pd.DataFrame:
        with self.reading() as con:
            return con.execute(statement, params or []).df()

    def scalar(self, statement: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(statement, params)
        return rows[0][0] if rows else None

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


class Store(Operations):
    """The file store; `Store(target)` with a DuckLake target (is_lake) gives a LakeStore instead."""

    def __new__(
        cls, path: Path | str | None = None, timeout: float = 60.0, read_only: bool | None = None
    ) -> Any:
        if cls is Store and is_lake(path):
            from lib.store.lake import LakeStore  # the lake imports this module

            return LakeStore(str(path) if path is not None else os.environ["SYCOSCOPE_DB"], timeout)
        return super().__new__(cls)

    def __init__(self, path: Path | str | None = None, timeout: float = 60.0, read_only: bool | None = None):
        """`read_only`: None follows SYCOSCOPE_READ_ONLY (read_only_setting)."""
        self.path = Path(path) if path is not None else Path(default_location())
        self.timeout = timeout
        self.read_only = read_only_setting() if read_only is None else read_only
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.gate_path = self.path.with_name(self.path.name + ".gate")
        if self.read_only:
            self._private_locks()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = self.path.resolve()  # one lease, and one read per thread, for each file
        self.name = str(self.path)  # what pages and messages show (a lake shows its catalog, redacted)
        self.location = str(self.path)  # what Store() takes to open it again
        self._prepare()

    def _private_locks(self) -> None:
        """A read-only store's lock files lie in a folder of this user's, not beside the store (whose
        folder may be read-only): its readers still take turns with each other, and a writer that
        should come anyway meets DuckDB's own lock on the file, which both wait for (_connect)."""
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise StoreError(
                f"{self.path}: no store there to open read-only ({READ_ONLY_ENV} is set): point "
                "SYCOSCOPE_DB at a store file, or unset it to make a new store"
            )
        folder = Path(tempfile.gettempdir()) / f"sycoscope-read-only-{os.getuid()}"
        folder.mkdir(mode=0o700, exist_ok=True)
        name = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:24]
        self.lock_path, self.gate_path = folder / f"{name}.lock", folder / f"{name}.gate"

    # -- connections ----------------------------------------------------------------------
    def _connect(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                con = duckdb.connect(str(self.path), read_only=read_only)
                con.execute(sql.QUIET)
                return con
            except duckdb.IOException as e:
                text = str(e)
                if "newer version of DuckDB" in text:
                    raise StoreError(
                        f"{self.path} was written by a newer DuckDB than this Sycoscope's "
                        f"{duckdb.__version__} (pinned for DuckLake): convert it once with the newer "
                        "DuckDB, as the README's "
                        "'A store written by DuckDB 2' says; the file itself is left as it is"
                    ) from None
                if "not a valid DuckDB database" in text or "database file" in text and "exists" in text:
                    raise StoreError(
                        f"{self.path} is not a DuckDB store ({text.splitlines()[0]}). "
                        "Point SYCOSCOPE_DB at another file or move this one away."
                    ) from None
                # Someone outside our lock (a duckdb shell, say) holds the file: wait, bounded.
                if "lock" not in text.lower() or time.monotonic() > deadline:
                    raise StoreError(f"cannot open store {self.path}: {text}") from None
                time.sleep(0.05)

    def with_timeout(self, timeout: float) -> Store:
        """This store, waiting at most `timeout` seconds to get in (say, to try again later)."""
        other = copy.copy(self)
        other.timeout = timeout
        return other

    def _busy(self) -> StoreBusy:
        return StoreBusy(
            f"store {self.path} is busy: a read or a write (an export, a long query, a run in another "
            f"process) has held it for more than {self.timeout:g} s; wait for it or stop it"
        )

    @contextmanager
    def _wait_for(self, path: Path, exclusive: bool, deadline: float) -> Iterator[None]:
        """A lock file taken by the deadline, else StoreBusy."""
        try:
            held = ExitStack()
            held.enter_context(_flock(path, exclusive, deadline))
        except _TimedOut:
            raise self._busy() from None
        with held:
            yield

    @contextmanager
    def _locked(self, exclusive: bool, deadline: float) -> Iterator[None]:
        """The lock, taken through the gate; a writer drains this process's read lease while it
        holds the gate (see the module docstring)."""
        with ExitStack() as held:
            with self._wait_for(self.gate_path, exclusive, deadline):
                if exclusive:
                    self._lease.drain(self, deadline)
                held.enter_context(self._wait_for(self.lock_path, exclusive, deadline))
            yield

    @property
    def _lease(self) -> _ReadLease:
        with _leases_lock:
            # a store open read-only locks elsewhere (_private_locks): a lease of its own
            key = (self.key, self.read_only)
            if key not in _leases:
                _leases[key] = _ReadLease(self)
            return _leases[key]

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read. A read inside another read of this store on the same thread uses the outer
        read's database: going in again would wait behind a writer that waits for the outer read."""
        reads = _reads_of_thread()
        outer = reads.get(self.key)
        if outer is not None:
            cursor = outer.cursor()
            try:
                yield cursor
            finally:
                cursor.close()
            return
        deadline = time.monotonic() + self.timeout
        lease = self._lease
        cursor = lease.acquire(self, deadline)
        try:
            if cursor is not None:
                reads[self.key] = cursor
                yield cursor
                return
            with self._locked(exclusive=False, deadline=deadline):  # a writer waits: queue behind it
                con = self._connect(read_only=True)
                try:
                    reads[self.key] = con
                    yield con
                finally:
                    con.close()
        finally:
            reads.pop(self.key, None)
            if cursor is not None:
                lease.release(cursor)

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction: committed if the block ends normally, rolled back if it raises. A write
        the disk refuses raises StoreError naming the file, and nothing of it is stored."""
        if self.read_only:
            raise StoreError(
                f"store {self.path} is open read-only ({READ_ONLY_ENV} is set): nothing is written to "
                "it; unset it to change the store"
            )
        if self.key in _reads_of_thread():
            raise RuntimeError(
                f"a write to store {self.path} inside a read of it on the same thread: the write "
                "would wait for the read to end, which waits for the write; end the read first"
            )
        with self._locked(exclusive=True, deadline=time.monotonic() + self.timeout):
            con = self._connect(read_only=False)
            try:
                with transaction(con, self._write_failed):
                    yield con
            finally:
                con.close()

    def _write_failed(self, error: duckdb.Error) -> StoreError:
        text = str(error).splitlines()[0]
        hint = "the disk is full: free some space" if "No space left" in text else "fix what it says"
        return StoreError(
            f"cannot write to store {self.path}: {text}. Nothing of this change was stored and what "
            f"was stored before is intact; {hint}, then try again"
        )

    # -- schema -----------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Create the schema in a new file; migrate an older one; refuse a newer one."""
        if self.path.exists() and self.path.stat().st_size > 0:
            with self.reading() as con:
                tables = {r[0] for r in con.execute(sql.TABLES).fetchall()}
                version = con.execute(sql.GET_VERSION).fetchone() if "meta" in tables else None
            if version is not None and int(version[0]) == sql.SCHEMA_VERSION:
                return
            if self.read_only:
                found = "no schema version" if version is None else f"schema version {version[0]}"
                raise StoreError(
                    f"{self.path} has {found}, this Sycoscope reads {sql.SCHEMA_VERSION}, and a store "
                    f"open read-only ({READ_ONLY_ENV}) is not migrated: open it once without it, or "
                    "use the Sycoscope that made it"
                )
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
