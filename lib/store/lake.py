"""The shared store: a DuckLake catalog (PostgreSQL, or any catalog DuckLake takes) with its data
files on a shared disk or object storage, read and written by many processes on many machines.

SYCOSCOPE_DB='ducklake:postgres:dbname=sycoscope host=db.lab user=sycoscope' names the catalog,
SYCOSCOPE_DATA_PATH its data folder ('/shared/sycoscope/' or 's3://bucket/sycoscope/'); the
password comes from PGPASSWORD (or ~/.pgpass), never from the target: a target that holds one is
refused, and what is shown of a target is redacted all the same.

Writers are serialised, as the file store's are: one in-memory DuckDB per process holds the catalog
attached, and a write takes this process's lock, then a PostgreSQL advisory lock on the catalog's
database (one session per process, sql.LAKE_LOCK; waiting at most the store's timeout, then
StoreBusy), and only then begins its DuckLake transaction, so that it reads the snapshot every
earlier write committed to. It runs once and never conflicts, and what it reads inside the
transaction to decide (a batch already collected, a run's cancel flag, ingest's counts) holds until
it commits. A key is checked by the statement that inserts it (sql.LAKE's NOT EXISTS and MERGE:
DuckLake has no keys), exact because no other write runs in between. Creating the schema in a new
catalog and `compact` hold the same lock. A process that dies loses its session and so its lock.
A catalog that is not PostgreSQL (a DuckDB file: 'ducklake:lake.ducklake') is opened by one
process only, so there the process's lock is all there is.

Reads take no lock: a cursor of the process's DuckDB, each statement on the newest snapshot.
Small writes (a transcript, a run's progress) stay in the catalog as inlined rows, not a data file
each (DATA_INLINING_ROW_LIMIT); `compact` writes them out and merges files (lib.cli compact).
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import psycopg
from psycopg.conninfo import conninfo_to_dict

from lib.paths import DEFAULT_STORE
from lib.store import sql
from lib.store.database import LAKE_PREFIX, Operations, StoreBusy, StoreError, transaction

INLINE_ROWS = 500  # inserts of at most this many rows stay in the catalog until compacted
CATALOG = "lake"  # the attached catalog's name in each process's DuckDB
POSTGRES = "postgres:"
# A dead machine's session (and so its lock) is ended by the server after about this many seconds
KEEPALIVE = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


def extension_file(name: str) -> str:
    """A DuckDB extension's file from its PyPI package (duckdb-extension-<name>), for LOAD: nothing
    is downloaded, and the file matches the pinned DuckDB."""
    package = {"postgres_scanner": "duckdb_extension_postgres_scanner"}.get(name, f"duckdb_extension_{name}")
    module = __import__(package)
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.exists():
        raise StoreError(
            f"DuckDB's {name} extension for DuckDB {duckdb.__version__} is not installed ({path}): "
            "pip install -r requirements.txt"
        )
    return str(path)


def redact(text: str) -> str:
    """`text` without any password a connection string in it holds (password=, sslpassword=, quoted
    or not, and a URI's user:password@)."""
    text = re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s&]+)", r"\1***", text, flags=re.IGNORECASE)
    return re.sub(r"(://[^/:@\s]*:)[^@\s]*@", r"\1***@", text)


def refuse_password(target: str) -> None:
    """StoreError for a target that holds a password in any form: it would be shown and logged as
    the store's name, and it belongs in PGPASSWORD or ~/.pgpass."""
    catalog = target[len(LAKE_PREFIX) :]
    held = redact(target) != target
    if catalog.startswith(POSTGRES):
        try:
            held = held or bool(
                {"password", "sslpassword"} & conninfo_to_dict(catalog[len(POSTGRES) :]).keys()
            )
        except psycopg.ProgrammingError as e:
            raise StoreError(
                f"the DuckLake target {redact(target)} is not a PostgreSQL connection string: {e}"
            ) from None
    if held:
        raise StoreError(
            f"the DuckLake target {redact(target)} holds a password: take it out of SYCOSCOPE_DB and "
            "put it in PGPASSWORD or ~/.pgpass, where it is neither shown nor logged"
        )


def _host(dsn: str) -> str:
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        parts = {}
    return str(parts.get("host") or "localhost") + (f":{parts['port']}" if parts.get("port") else "")


def local_path(target: str, data_path: str | None) -> Path:
    """What a lake keeps on a local path is named after this: the runs' lock files (lib.run.runner),
    the tables cache (lib.measure.tablecache). On a shared data disk it is shared too; else (object
    storage, or no data path) it is this machine's, one per lake, named after a hash of the target."""
    if data_path and "://" not in data_path:
        return Path(data_path) / "sycoscope.lake"
    digest = hashlib.sha256(f"{target}\n{data_path or ''}".encode()).hexdigest()[:16]
    return DEFAULT_STORE.with_name(f"lake-{digest}.lake")


class _Lake:
    """One process's DuckDB with the catalog attached, shared by all its threads, and its session
    on the catalog's PostgreSQL that holds the writers' lock."""

    def __init__(self, target: str, data_path: str | None, timeout: float):
        self.name = redact(target)
        catalog = target[len(LAKE_PREFIX) :]
        self.dsn = catalog[len(POSTGRES) :] if catalog.startswith(POSTGRES) else None
        self.lock = threading.Lock()  # this process's writer
        self.cursor_lock = threading.Lock()  # DuckDB's cursor() is not safe from several threads at once
        self.session: psycopg.Connection | None = None
        # Offline: an extension is loaded from its package's file (extension_file) or not at all
        self.con = duckdb.connect(
            ":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
        )
        try:
            self.con.execute(sql.QUIET)  # its cursors inherit it
            for name in ["ducklake", *(["postgres_scanner"] if self.dsn is not None else [])]:
                self.con.execute(f"LOAD '{extension_file(name)}'")
            if data_path and "://" in data_path:
                self.con.execute(f"LOAD '{extension_file('httpfs')}'")
            self._attach(target, data_path, timeout)
        except BaseException:
            self.close()
            raise

    def _attach(self, target: str, data_path: str | None, timeout: float) -> None:
        options, params = ["DATA_INLINING_ROW_LIMIT ?"], [INLINE_ROWS]
        if data_path:
            options.append("DATA_PATH ?")
            params.append(data_path)
        # ATTACH takes no parameter for its target: the target is quoted as a literal
        literal = "'" + target.replace("'", "''") + "'"
        attach = f"ATTACH {literal} AS {CATALOG} ({', '.join(options)})"
        try:
            if self.dsn is not None and not self._exists(timeout):
                # a new catalog: its first ATTACH creates DuckLake's tables, one process at a time
                with self.exclusive(timeout):
                    self.con.execute(attach, params)
            else:
                self.con.execute(attach, params)
        except duckdb.Error as e:
            raise self._refused(str(e)) from None

    def _refused(self, error: str) -> StoreError:
        where = f"PostgreSQL at {_host(self.dsn)}" if self.dsn is not None else "the catalog"
        return StoreError(
            f"cannot open the DuckLake store {self.name}: {where} refused ({redact(error.splitlines()[0])}). "
            "Check that it runs and takes connections, the user and PGPASSWORD, and SYCOSCOPE_DATA_PATH"
        )

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self.cursor_lock:
            cursor = self.con.cursor()
        cursor.execute(f"USE {CATALOG}")
        return cursor

    # -- the writers' lock ------------------------------------------------------------------
    def _session(self, timeout: float) -> psycopg.Connection:
        if self.session is None or self.session.closed:
            try:
                self.session = psycopg.connect(
                    self.dsn,
                    autocommit=True,
                    application_name="sycoscope-lake",
                    connect_timeout=max(2, min(int(timeout), 30)),
                )
                with self.session.cursor() as pg:
                    for setting, value in KEEPALIVE.items():
                        pg.execute(sql.LAKE_SET, [setting, value])
            except psycopg.OperationalError as e:
                self.session = None
                raise self._refused(str(e)) from None
        return self.session

    def _pg(self, statements: list[tuple[str, list]], timeout: float) -> list[tuple]:
        """Statements on this process's session (the last one's rows), all again on a new session
        once if the session broke (the server restarted, or ended it)."""
        for attempt in range(2):
            session = self._session(timeout)
            try:
                with session.cursor() as pg:
                    for statement, params in statements:
                        pg.execute(statement, params)
                    return pg.fetchall() if pg.description else []
            except psycopg.errors.LockNotAvailable:
                raise
            except psycopg.OperationalError as e:
                with suppress(psycopg.Error):
                    session.close()
                self.session = None
                if attempt:
                    raise self._refused(str(e)) from None
        raise AssertionError("unreachable")

    def _exists(self, timeout: float) -> bool:
        return bool(self._pg([(sql.LAKE_CATALOG_EXISTS, [])], timeout)[0][0])

    @contextmanager
    def exclusive(self, timeout: float) -> Iterator[None]:
        """This process's lock and then the catalog's advisory lock (a PostgreSQL catalog), each
        waited for at most `timeout` seconds (then StoreBusy); released when the block ends."""
        deadline = time.monotonic() + timeout
        if not self.lock.acquire(timeout=max(timeout, 0)):
            raise self._busy(timeout)
        try:
            if self.dsn is None:
                yield
                return
            left_ms = max(1, int((deadline - time.monotonic()) * 1000))
            try:
                self._pg([(sql.LAKE_SET, ["lock_timeout", f"{left_ms}ms"]), (sql.LAKE_LOCK, [])], timeout)
            except psycopg.errors.LockNotAvailable:
                raise self._busy(timeout) from None
            try:
                yield
            finally:
                try:
                    self._pg([(sql.LAKE_UNLOCK, [])], timeout)
                except (psycopg.Error, StoreError):  # a session gone has let go of its lock
                    with suppress(psycopg.Error):
                        if self.session is not None:
                            self.session.close()
                    self.session = None
        finally:
            self.lock.release()

    def _busy(self, timeout: float) -> StoreBusy:
        return StoreBusy(
            f"store {self.name} is busy: another writer (a long write, a copy, a compaction, in this "
            f"or another process) has held it for more than {timeout:g} s; wait for it or stop it"
        )

    def close(self) -> None:
        with suppress(Exception):
            self.con.close()
        if self.session is not None:
            with suppress(Exception):
                self.session.close()


_lakes: dict[tuple[str, str | None], _Lake] = {}
_lakes_lock = threading.Lock()
_writes = threading.local()  # the lakes this thread writes to now


class LakeStore(Operations):
    # A commit goes through PostgreSQL and waits for every other writer: a run writes the replies of
    # a second together (lib.run.runner.Writer).
    write_every = 1.0

    def __init__(self, target: str, timeout: float = 60.0, data_path: str | None = None):
        refuse_password(target)
        self.target = target
        self.data_path = data_path or os.environ.get("SYCOSCOPE_DATA_PATH") or None
        self.timeout = timeout
        self.name = redact(target)  # what pages and messages show
        self.location = target  # what Store() takes to open it again (it holds no password)
        self.key = (target, self.data_path)
        self.path = local_path(target, self.data_path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prepare()

    def __str__(self) -> str:
        return self.name

    @property
    def _lake(self) -> _Lake:
        with _lakes_lock:
            if self.key not in _lakes:
                _lakes[self.key] = _Lake(self.target, self.data_path, self.timeout)
            return _lakes[self.key]

    def with_timeout(self, timeout: float) -> LakeStore:
        other = copy.copy(self)
        other.timeout = timeout
        return other

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read: a cursor of this process's DuckDB, each statement on the newest snapshot."""
        cursor = self._lake.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One transaction, begun once every other writer of the store has let go (the writers'
        lock, at most `timeout` seconds, else StoreBusy) and committed if the block ends normally.
        A statement that inserts by key runs as the lake's variant (sql.LAKE). A write that fails
        raises StoreError (the catalog or the data path refused) and stores nothing."""
        lake = self._lake
        held = getattr(_writes, "lakes", set())
        if self.key in held:
            raise RuntimeError(f"a write to store {self.name} inside a write to it on the same thread")
        _writes.lakes = held | {self.key}
        try:
            with lake.exclusive(self.timeout):
                cursor = lake.cursor()
                try:
                    # DuckDB begins lazily: the snapshot is read by the block's first statement,
                    # under the lock
                    with transaction(cursor, self._write_failed):
                        yield _LakeWrite(cursor)
                finally:
                    cursor.close()
        finally:
            _writes.lakes = held

    def _write_failed(self, error: duckdb.Error) -> StoreError:
        return StoreError(
            f"cannot write to store {self.name}: {redact(str(error).splitlines()[0])}. Nothing of this "
            "change was stored and what was stored before is intact; fix what it says, then try again"
        )

    # -- schema -----------------------------------------------------------------------------
    def _version(self, con: duckdb.DuckDBPyConnection) -> tuple[set[str], str | None]:
        tables = {r[0] for r in con.execute(sql.TABLES).fetchall()}
        version = con.execute(sql.GET_VERSION).fetchone() if "meta" in tables else None
        return tables, version[0] if version else None

    def _prepare(self) -> None:
        """Create the schema in a new catalog, or migrate an older one whose migrations only add
        tables (`_additions`), under the writers' lock: of several processes that open it at once,
        the first creates or migrates it and the others find it done. Refuse any other version (a
        newer one, or one whose migrations change tables: migrate by copying, python -m lib copy)."""
        with self.reading() as con:
            _, version = self._version(con)
        if version is not None and _additions(int(version)) is not None:
            with self.writing() as con:
                _, version = self._version(con)
                steps = _additions(int(version or 0))
                if steps is not None:
                    for statement in sql.lake_schema([*steps, *sql.SCHEMA]):
                        con.execute(statement)
                    con.execute(sql.SET_VERSION, [str(sql.SCHEMA_VERSION)])
                    version = str(sql.SCHEMA_VERSION)
        if version is None:
            with self.writing() as con:
                tables, version = self._version(con)
                if version is None and tables:
                    raise StoreError(
                        f"the DuckLake catalog {self.name} holds tables but is not a Sycoscope store"
                    )
                if version is None:
                    for statement in sql.lake_schema(sql.SCHEMA):
                        con.execute(statement)
                    con.execute(sql.SET_VERSION, [str(sql.SCHEMA_VERSION)])
                    version = str(sql.SCHEMA_VERSION)
        if int(version) != sql.SCHEMA_VERSION:
            raise StoreError(
                f"the DuckLake store {self.name} has schema version {version}, not this Sycoscope's "
                f"({sql.SCHEMA_VERSION}): copy it into a new store with a matching Sycoscope"
            )

    # -- maintenance ------------------------------------------------------------------------
    def data_files(self) -> int:
        """How many data files the store's tables hold now (deletion files included)."""
        with self.reading() as con:
            tables = [r[0] for r in con.execute(sql.LAKE_TABLES, [CATALOG]).fetchall()]
            return sum(con.execute(sql.LAKE_FILES, [CATALOG, t]).fetchone()[0] for t in tables)

    def compact(self, keep_minutes: int = 10) -> tuple[int, int]:
        """DuckLake's maintenance, under the writers' lock (it rewrites what a write would change):
        inlined rows written out as files, small files merged, files with deletions rewritten;
        snapshots older than `keep_minutes` expired and the files no snapshot needs any more
        deleted (readers still on a newer snapshot keep theirs). Returns the data files before and
        after."""
        before = self.data_files()
        lake = self._lake
        with lake.exclusive(self.timeout):
            cursor = lake.cursor()
            try:
                values = {"catalog": CATALOG, "minutes": keep_minutes}
                for statement in sql.LAKE_COMPACT:
                    cursor.execute(statement, {k: v for k, v in values.items() if f"${k}" in statement})
            except duckdb.Error as e:
                raise StoreError(
                    f"cannot compact store {self.name}: {redact(str(e).splitlines()[0])}. What was stored "
                    "is intact; fix what it says, then try again"
                ) from e
            finally:
                cursor.close()
        return before, self.data_files()


def _additions(version: int) -> list[str] | None:
    """The migrations' statements from an older `version` to the current schema when they only add
    tables (CREATE TABLE IF NOT EXISTS; a view's change is carried by SCHEMA's CREATE OR REPLACE),
    which a lake takes in place; None for the current or a newer version, or when one does more (an
    ALTER, an UPDATE, a rebuild)."""
    if not 0 < version < sql.SCHEMA_VERSION:
        return None
    steps = [s for v in range(version, sql.SCHEMA_VERSION) for s in sql.MIGRATIONS[v]]
    return steps if all(s.lstrip().startswith("CREATE TABLE IF NOT EXISTS") for s in steps) else None


class _LakeWrite:
    """A write's connection: each statement the lake's variant where it has one (sql.LAKE)."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection):
        self.cursor = cursor

    def execute(self, statement: str, params: object = None) -> duckdb.DuckDBPyConnection:
        return self.cursor.execute(sql.LAKE.get(statement, statement), params or [])

    def register(self, name: str, frame: object) -> None:
        self.cursor.register(name, frame)
