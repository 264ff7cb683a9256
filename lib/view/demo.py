"""A store a speaker can carry: `python -m lib demo --out FILE` writes a new store holding the first-run
seed's sets answered by the bundled model, offline, at the seed's settings (temperature 0, short
replies), with its run record and grades. The same command gives the same replies: temperature 0, the
items drawn by the sample seed, and the bundled model answering one request at a time.

Made in one go, or not at all. The store is built at FILE.partial (PARTIAL) and renamed to FILE only
when its run ended done with no probe failed, after every connection to it is closed and its last
writes are checkpointed into the file (no write-ahead log left beside it). A run that failed, or a
demo interrupted (Ctrl-C), leaves no FILE and removes its partial store: it cannot be resumed, since
a resumed run would not give the same replies as one made in one go (the server's prompt cache makes
a reply depend on the one before it), so a rerun starts afresh. A demo killed outright leaves its
partial store; the next demo for FILE removes it, and says so. While a demo makes FILE it holds
FILE.making locked (`_claimed`), so that a second demo for FILE refuses rather than remove the
partial store of a live one.

Open it read-only on any machine: SYCOSCOPE_DB=FILE SYCOSCOPE_READ_ONLY=1 streamlit run app.py
(lib.store.database: nothing is written to it or beside it, and the dashboard starts no run).
"""

from __future__ import annotations

import fcntl
import glob
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path

import duckdb

from lib.measure import grading
from lib.run import runner
from lib.store import Store, StoreError, is_lake, sql
from lib.view import firstrun

KIND = "demo"  # RunSpec.kind of the demo's run
PARTIAL = ".partial"  # FILE + PARTIAL: where the store is made before it is named FILE
MAKING = ".making"  # FILE + MAKING: the lock a demo holds while it makes FILE
DUCKDB_MAGIC = b"DUCK"  # bytes 8 to 12 of a DuckDB file


class NotMade(Exception):
    """The demo's run did not end done: no store was written."""


def spec(items: int, seed: int = 0, base: runner.RunSpec = firstrun.SEED) -> runner.RunSpec:
    """The demo's run: the seed's (`base`), with `items` items of each set drawn by sample seed `seed`."""
    if items < 1:
        raise ValueError(f"--items {items}: needs at least 1 item of each set")
    # One request at a time: the server's prompt cache makes a reply depend on the one before it.
    return replace(base, limit=items, seed=seed, kind=KIND, concurrency=1)


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + PARTIAL)


def make(
    out: Path,
    items: int,
    seed: int = 0,
    on_progress: Callable[[runner.Progress], None] | None = None,
    base: runner.RunSpec = firstrun.SEED,
    say: Callable[[str], None] = lambda _: None,
) -> tuple[Store, str]:
    """Write a new store at `out` (refused when something is there) with the sets of `base` (the
    seed's), send the demo's run and grade it; the store at `out` and the run's id. Raises NotMade
    when the run did not end done; then, as on any other error or an interrupt, nothing is at `out`
    and the partial store is removed. `say` is told what was removed."""
    if is_lake(str(out)):
        raise ValueError(f"--out {out}: the demo writes a store file, not a DuckLake catalog")
    the_spec = spec(items, seed, base)
    partial = partial_path(out)
    with _claimed(out):
        # a write-ahead log left at FILE.wal would be replayed into the new store when it is opened
        for there in (out, out.with_name(out.name + ".wal")):
            if there.exists() or there.is_symlink():
                raise _taken(out, there)
        if _clear_stale(partial):
            say(
                f"removed {partial}: the partial store of an earlier demo for {out} that was stopped "
                "before it ended (a demo is made in one go, so this one starts afresh)"
            )
        store = Store(partial, read_only=False)
        try:
            firstrun.ingest_builtins(store, the_spec.set_ids)
            the_plan = runner.plan(store, the_spec)
            run_id = runner.create_run(store, the_plan)
            runner.execute(store, run_id, the_plan, on_progress=on_progress, grade=grading.grade_run)
            status, message, failed = store.query(sql.RUN_END, [run_id])[0]
            if status != "done" or failed:
                raise NotMade(
                    f"the demo's run {run_id} ended {status}"
                    + (f" with {failed} probe(s) failed" if failed else "")
                    + (f": {message}" if message else "")
                    + f"; nothing was written at {out} and its partial store was removed: "
                    "fix the cause and run the demo again"
                )
            _close(store)
            _publish(partial, out)
        except BaseException as e:
            with suppress(StoreError, duckdb.Error):  # a store the disk broke: removed all the same
                _close(store)
            if not isinstance(e, NotMade):
                say(f"{out} was not written; its partial store {partial} was removed")
            raise
        finally:
            for path in _files_of(partial):
                path.unlink(missing_ok=True)
    return Store(out, read_only=False), run_id


def _taken(out: Path, there: Path) -> ValueError:
    return ValueError(f"--out {out}: {there} is there already; the demo writes a new store only")


def _publish(partial: Path, out: Path) -> None:
    """Name the made store `out`, never over a file made there meanwhile (a dashboard or a run opened
    `out` while the demo ran): a hard link fails if `out` exists. A file system without hard links
    (FAT, on many sticks) gets the check and a rename."""
    try:
        os.link(partial, out)
    except FileExistsError:
        raise _taken(out, out) from None
    except OSError:
        if out.exists() or out.is_symlink():
            raise _taken(out, out) from None
        os.rename(partial, out)
    else:
        partial.unlink()


def _close(store: Store) -> None:
    """Close every connection of this process to the store, its writes checkpointed into the file,
    so that the file alone holds the store: a write drains this process's read lease (Store.writing),
    and the last connection closed leaves no write-ahead log. The run's threads have ended."""
    with store.writing() as con:
        con.execute(sql.CHECKPOINT)
    wal = store.path.with_name(store.path.name + ".wal")
    if wal.exists():
        raise StoreError(f"{store.path}: its write-ahead log {wal} is still there after closing it")


def _files_of(partial: Path) -> list[Path]:
    """A partial store's files: itself, its write-ahead log, the store's lock files, its runs' lock
    files (lib.store.database, lib.run.runner)."""
    beside = [partial.with_name(partial.name + suffix) for suffix in (".wal", ".lock", ".gate")]
    return [partial, *beside, *partial.parent.glob(f"{glob.escape(partial.name)}.run-*.lock")]


def _clear_stale(partial: Path) -> bool:
    """Remove what a demo killed outright left at `partial` (the caller holds the claim, so no demo is
    making it): whether there was a store. Anything but a DuckDB file there is refused, not removed."""
    there = partial.is_symlink() or partial.exists()
    if there and (partial.is_symlink() or not partial.is_file() or not _is_duckdb(partial)):
        raise ValueError(
            f"{partial} is there and is not a demo's partial store: move it away (the demo makes its "
            "store there, then renames it)"
        )
    for path in _files_of(partial):  # a stale write-ahead log would be replayed into the new store
        path.unlink(missing_ok=True)
    return there


def _is_duckdb(path: Path) -> bool:
    """An empty file (killed as DuckDB made it) or one with DuckDB's magic bytes."""
    with path.open("rb") as f:
        head = f.read(12)
    return not head or head[8:12] == DUCKDB_MAGIC


@contextmanager
def _claimed(out: Path) -> Iterator[None]:
    """This process's claim on making `out`: FILE.making locked exclusive (flock) until the block ends,
    then removed. Refused at once when another process holds it."""
    path = out.with_name(out.name + MAKING)
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ValueError(f"--out {out}: another demo is making it now (it holds {path})") from None
        if runner.same_file(fd, path):  # still the file at `path` (as a run's lock file)
            break
        os.close(fd)  # the demo before ended and removed it between open and lock: make it again
    try:
        yield
    finally:
        if runner.same_file(fd, path):
            path.unlink()
        os.close(fd)
