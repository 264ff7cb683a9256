"""Faults survived, with real processes: SIGKILL in the middle of an ingest, of grading and of a run's
write (nothing half-written; resuming sends and stores only what is missing), a provider that hangs in
the middle of a reply, a disk that fills up, a store busy for longer than a run's patience, and the
runs a dead process leaves behind."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import duckdb
import pytest

from bench import generate
from lib.measure import grading
from lib.paths import REPO
from lib.probes import probesets
from lib.run import runner
from lib.store import Store, StoreBusy, StoreError, sql
from tests.fake_vendor import Ok, openai_reply

FACTS = "builtin/facts-answer"


# -- helpers --------------------------------------------------------------------------------------


class SlowServer:
    """An OpenAI-compatible server on loopback that answers each request after `delay` seconds. The
    first `hang` requests get the status line, the headers and half the body, then nothing more: a
    provider that hangs in the middle of its reply. `on_request`, when given, is called with each
    request's number (from 1) before it is answered."""

    def __init__(self, delay: float = 0.0, hang: int = 0, on_request: Callable[[int], None] | None = None):
        self.delay, self.hang, self.on_request = delay, hang, on_request
        self.requests = 0
        self._lock = threading.Lock()
        self._closing = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (the http.server name)
                body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
                with server._lock:
                    server.requests += 1
                    number = server.requests
                    hangs = number <= server.hang
                if server.on_request is not None:
                    server.on_request(number)
                data = json.dumps(openai_reply(Ok("The answer is Paris."), body)).encode()
                if not hangs:
                    time.sleep(server.delay)
                try:
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    if hangs:
                        self.wfile.write(data[: len(data) // 2])
                        self.wfile.flush()
                        server._closing.wait(120)
                        return
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> SlowServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()


def child_env(db: Path) -> dict[str, str]:
    return {**os.environ, "SYCOSCOPE_DB": str(db)}


def wait_until(condition, what: str, child: subprocess.Popen | None = None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if child is not None and child.poll() is not None:
            raise AssertionError(f"the child ended before {what}: {child.stderr.read()}")
        assert time.monotonic() < deadline, f"no {what} in {seconds} s"
        time.sleep(0.02)


def kill_while_writing(child: subprocess.Popen, store: Store, seconds: float = 120) -> None:
    """SIGKILL the child while it holds the store's lock for writing: in its transaction, or closing it."""
    fd = os.open(store.lock_path, os.O_RDWR | os.O_CREAT)
    deadline = time.monotonic() + seconds
    try:
        while True:
            assert child.poll() is None, f"the child ended before it was killed: {child.stderr.read()}"
            assert time.monotonic() < deadline, "the child never held the store for writing"
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:  # held exclusive: the child writes
                child.send_signal(signal.SIGKILL)
                break
            time.sleep(0.0005)
    finally:
        os.close(fd)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def facts_store(db: Path, timeout: float = 60.0) -> Store:
    store = Store(db, timeout=timeout)
    facts = probesets.get(FACTS)
    store.ingest(facts, facts.load())
    return store


def per_probe(store: Store) -> dict[str, int]:
    return dict(store.query("SELECT probe_id, count(*) FROM transcripts GROUP BY probe_id"))


def orphans(store: Store) -> int:
    return store.scalar(
        "SELECT count(*) FROM transcripts t WHERE NOT EXISTS (SELECT 1 FROM probes p "
        "WHERE p.probe_id = t.probe_id)"
    )


# -- SIGKILL ---------------------------------------------------------------------------------------

# A made-up set of N items with two probes each, put in the store in one Store.ingest.
INGEST = """
import json, sys
from lib.probes.items import Item, Probe, item_id, user
from lib.store import Store
from tests.fixtures import a_set

path, n = sys.argv[1], int(sys.argv[2])
rows = []
for k in range(n):
    iid = item_id("test/big", k)
    item = Item(iid, "test/big", "answer", f"question {k}", {"correct_answer": str(k)})
    probes = [Probe(iid, "neutral", (user(f"question {k}"),)),
              Probe(iid, "suggests_wrong", (user(f"question {k}? I think {k + 1}"),))]
    rows.append((item, probes))
print(json.dumps(Store(path).ingest(a_set("test/big", "answer"), rows)), flush=True)
"""
BIG = 100_000


def test_an_ingest_killed_mid_transaction_leaves_all_or_nothing_and_completes_once(tmp_path):
    db = tmp_path / "s.duckdb"
    store = facts_store(db)
    before = store.stats()["sets"][FACTS]
    command = [sys.executable, "-c", INGEST, str(db), str(BIG)]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kill_while_writing(child, store)

    store = Store(db)
    sets = store.stats()["sets"]
    assert sets[FACTS] == before  # what was there is intact
    big = sets.get("test/big", {"items": 0, "probes": 0})
    # Killed in its transaction nothing of it is there; killed as it closed, all of it.
    assert (big["items"], big["probes"]) in ((0, 0), (BIG, 2 * BIG))
    assert store.scalar("SELECT count(*) FROM probes WHERE item_id NOT IN (SELECT item_id FROM items)") == 0

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == [BIG - big["items"], 2 * (BIG - big["items"])]  # the rest, once
    sets = Store(db).stats()["sets"]
    assert (sets["test/big"]["items"], sets["test/big"]["probes"]) == (BIG, 2 * BIG)
    assert sets[FACTS] == before


def test_grading_killed_mid_batch_resumes_to_one_grade_per_answer_and_grader(tmp_path):
    db = tmp_path / "s.duckdb"
    generate.generate(db, per_model=2000, models=2)
    store = Store(db)
    with store.writing() as con:
        con.execute("DELETE FROM grades")
    # The same store graded without a fault: what the resumed grading must end with.
    clean = tmp_path / "clean.duckdb"
    shutil.copy(db, clean)
    grading.grade_pending(Store(clean))

    command = [sys.executable, "-m", "lib", "grade"]
    child = subprocess.Popen(
        command, cwd=REPO, env=child_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: store.scalar(sql.COUNT["grades"]) > 0, "first batch of grades", child)
    kill_while_writing(child, store)
    partial = Store(db).scalar(sql.COUNT["grades"])
    total = Store(clean).scalar(sql.COUNT["grades"])
    assert 0 < partial < total

    resumed = subprocess.run(
        command, cwd=REPO, env=child_env(db), capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"wrote {total - partial:,} grades" in resumed.stdout
    rows = "SELECT transcript_id, grader, grader_version, correct, label FROM grades ORDER BY ALL"
    assert Store(db).query(rows) == Store(clean).query(rows)
    once = "SELECT count(*) FROM (SELECT transcript_id, grader FROM grades GROUP BY ALL HAVING count(*) > 1)"
    assert Store(db).scalar(once) == 0


def test_a_run_killed_while_writing_is_marked_interrupted_and_resumes_each_probe_once(tmp_path):
    db = tmp_path / "s.duckdb"
    store = facts_store(db)
    with SlowServer(delay=0.05) as server:
        command = [
            *(sys.executable, "-m", "lib", "run", "--model", "openai:fake", "--base-url", server.url),
            *("--set", FACTS, "--limit", "10", "--concurrency", "2"),
        ]
        child = subprocess.Popen(
            command, cwd=REPO, env=child_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_until(lambda: store.scalar(sql.COUNT["transcripts"]) >= 5, "5 transcripts", child)
        kill_while_writing(child, store)

        store = Store(db)
        stored = per_probe(store)
        assert 5 <= len(stored) < 40
        assert orphans(store) == 0
        assert store.scalar("SELECT count(*) FROM transcripts WHERE response = '' OR run_id IS NULL") == 0
        (run_id,) = (r[0] for r in store.query("SELECT run_id FROM runs"))
        assert store.scalar(sql.RUN_STATUS, [run_id]) == "running"  # as the killed process left it
        assert runner.mark_interrupted(store) == [run_id]
        status, message = store.query("SELECT status, message FROM runs WHERE run_id = ?", [run_id])[0]
        assert status == "interrupted" and "run it again" in message

        sent_before = server.requests
        resumed = subprocess.run(
            command, cwd=REPO, env=child_env(db), capture_output=True, text=True, timeout=300
        )
        assert resumed.returncode == 0, resumed.stderr
        assert f"40 probes: {len(stored)} cached, {40 - len(stored)} to send" in resumed.stdout
        assert server.requests - sent_before == 40 - len(stored)  # only what was missing, once
    store = Store(db)
    resumed_run = store.scalar("SELECT run_id FROM runs WHERE run_id <> ?", [run_id])
    assert store.scalar("SELECT n_done FROM runs WHERE run_id = ?", [resumed_run]) == 40 - len(stored)
    assert len(per_probe(store)) == 40
    assert orphans(store) == 0
    assert not list(tmp_path.glob("*.run-*.lock"))  # the dead run's lock file, and the resumed one's


# -- a provider that hangs in the middle of its reply ----------------------------------------------


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(runner, "RETRY_DELAYS", (0.01, 0.01))


def hang_spec(server: SlowServer, framings: tuple[str, ...] = ("suggests_wrong",)) -> runner.RunSpec:
    # suggests_wrong and its baseline, neutral: two probes
    return runner.RunSpec(
        "openai:fake", (FACTS,), framings, limit=1, base_url=server.url, concurrency=1, timeout=1.0
    )


def test_a_reply_that_hangs_midway_times_out_and_is_sent_again_once(tmp_path, quick_retries):
    store = facts_store(tmp_path / "s.duckdb")
    with SlowServer(hang=1) as server:
        run_id, progress = runner.run(store, hang_spec(server))
        assert server.requests == 3  # the one that hung, sent again, then the other probe
    assert (progress.done, progress.failed) == (2, 0)
    assert store.scalar("SELECT n_done FROM runs WHERE run_id = ?", [run_id]) == 2
    assert len(per_probe(store)) == 2
    assert store.scalar(sql.COUNT["errors"]) == 0
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"


def test_replies_that_always_hang_are_recorded_as_errors_not_transcripts(tmp_path, quick_retries):
    store = facts_store(tmp_path / "s.duckdb")
    with SlowServer(hang=100) as server:
        run_id, progress = runner.run(store, hang_spec(server))
        assert server.requests == 2 * 3  # each probe: the first try and two more
    assert (progress.done, progress.failed) == (0, 2)
    assert store.scalar(sql.COUNT["transcripts"]) == 0
    errors = store.query("SELECT probe_id, kind, run_id FROM errors ORDER BY ALL")
    assert len({probe for probe, _, _ in errors}) == 2 and {(k, r) for _, k, r in errors} == {
        ("timeout", run_id)
    }
    assert "failed after retries" in store.scalar("SELECT message FROM runs WHERE run_id = ?", [run_id])


# -- a full disk -------------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    """A 24 MB filesystem (tmpfs), when this machine lets us mount one; else the test is skipped and
    the injected variant below stands for it."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): the injected variant runs instead")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem of `folder` to the last byte; returns the file that fills it."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (65536, 1):
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler


def test_a_disk_that_fills_during_a_run_stops_it_with_a_clear_message_and_loses_nothing(small_disk):
    db = small_disk / "s.duckdb"
    store = facts_store(db)
    with SlowServer(delay=0.1) as server:
        spec = runner.RunSpec("openai:fake", (FACTS,), limit=2, base_url=server.url, concurrency=2)
        runner.run(store, spec)
        assert len(per_probe(store)) == 8
        command = [
            *(sys.executable, "-m", "lib", "run", "--model", "openai:fake", "--base-url", server.url),
            *("--set", FACTS, "--limit", "4", "--temperature", "0.5", "--concurrency", "1"),
        ]
        child = subprocess.Popen(
            command, cwd=REPO, env=child_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        wait_until(lambda: store.scalar(sql.COUNT["transcripts"]) >= 8 + 3, "3 transcripts of the run", child)
        filler = fill(small_disk)
        _, err = child.communicate(timeout=300)
        assert child.returncode == 2, err
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"error: cannot write to store {db}: ") and "the disk is full" in last, last

        # What was stored is intact and whole, and readable on the full disk.
        store = Store(db)
        rows = store.query("SELECT probe_id, params::VARCHAR, count(*) FROM transcripts GROUP BY ALL")
        assert 8 + 3 <= len(rows) < 8 + 16
        assert orphans(store) == 0

        filler.unlink()  # space again: the run completes, sending only what is missing
        sent_before = server.requests
        again = subprocess.run(
            command, cwd=REPO, env=child_env(db), capture_output=True, text=True, timeout=300
        )
        assert again.returncode == 0, again.stderr
        missing = 8 + 16 - len(rows)
        assert f"16 probes: {len(rows) - 8} cached, {missing} to send" in again.stdout
        assert server.requests - sent_before == missing
    store = Store(db)
    last = store.scalar("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1")
    assert store.scalar("SELECT n_done FROM runs WHERE run_id = ?", [last]) == missing
    assert store.scalar(sql.COUNT["transcripts"]) == 8 + 16


class _RefusingConnection:
    """A read-write connection whose writes of rows fail as on a full disk (the error DuckDB raises)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, wal: str):
        self._con, self._wal = con, wal

    def execute(self, statement: str, *args: object) -> object:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE")):
            raise duckdb.IOException(f'IO Error: Could not write file "{self._wal}": No space left on device')
        return self._con.execute(statement, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._con, name)


def test_a_write_refused_at_the_store_boundary_is_one_clear_error_and_loses_nothing(tmp_path, monkeypatch):
    db = tmp_path / "s.duckdb"
    store = facts_store(db)
    before = store.stats()
    connect = Store._connect

    def refusing(self: Store, read_only: bool):
        con = connect(self, read_only)
        return con if read_only else _RefusingConnection(con, f"{self.path}.wal")

    monkeypatch.setattr(Store, "_connect", refusing)
    arithmetic = probesets.get("builtin/wei-arithmetic")
    with pytest.raises(StoreError) as refused:
        store.ingest(arithmetic, arithmetic.load())
    message = str(refused.value)
    assert message.startswith(f"cannot write to store {db}: IO Error: Could not write file")
    assert "Nothing of this change was stored" in message and "the disk is full" in message
    monkeypatch.setattr(Store, "_connect", connect)
    assert Store(db).stats() == before  # nothing half-written, nothing lost
    assert store.ingest(arithmetic, arithmetic.load())[0] > 0  # and the store still takes writes


# -- runs a dead process left behind -----------------------------------------------------------------

CREATE_RUN = """
import sys
from lib.run import runner
from lib.store import Store
store = Store(sys.argv[1])
print(runner.create_run(store, runner.plan(store, runner.RunSpec("openai:fake", (sys.argv[2],), limit=1))))
"""


def test_the_next_run_marks_the_runs_of_dead_processes_interrupted_and_no_others(tmp_path):
    db = tmp_path / "s.duckdb"
    store = facts_store(db)
    done = subprocess.run(
        [sys.executable, "-c", CREATE_RUN, str(db), FACTS],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    planned = done.stdout.strip()  # "planned" by a process that has ended
    plan = json.loads(store.scalar("SELECT plan FROM runs WHERE run_id = ?", [planned]))
    assert plan["host"] == socket.gethostname() and plan["process_start"]
    here, me = socket.gethostname(), os.getpid()
    with store.writing() as con:
        for run_id, host, started, pid in (
            ("alive", here, runner._process_start(me), me),  # this process: going on
            ("reused-pid", here, "1", me),  # this pid, but of a process that started long before
            ("elsewhere", "another-machine", "1", me),  # another machine's: cannot be seen from here
            ("elsewhere-dead", "another-machine", "1", 999_999_999),
        ):
            plan_json = json.dumps({"host": host, "process_start": started})
            con.execute(
                sql.INSERT_RUN, [run_id, "running", "openai:fake", None, "{}", plan_json, 1, None, pid]
            )

    new = runner.create_run(store, runner.plan(store, runner.RunSpec("openai:fake", (FACTS,), limit=1)))
    runs = {r[0]: r[1:] for r in store.query("SELECT run_id, status, message FROM runs")}
    assert {run_id: status for run_id, (status, _) in runs.items()} == {
        planned: "interrupted",
        "reused-pid": "interrupted",
        new: "planned",
        "alive": "running",
        "elsewhere": "running",
        "elsewhere-dead": "running",
    }
    assert runs[planned][1].startswith("interrupted: its process (") and "run it again" in runs[planned][1]
    assert runner.mark_interrupted(store) == []  # once


# A run recorded by this process, which then keeps going (holding the run's lock) until killed.
HOLD_RUN = """
import sys, time
from lib.run import runner
from lib.store import Store
store = Store(sys.argv[1])
print(runner.create_run(store, runner.plan(store, runner.RunSpec("openai:fake", (sys.argv[2],), limit=1))))
sys.stdout.flush()
time.sleep(300)
"""


def test_a_run_whose_process_holds_its_lock_is_never_marked_and_is_once_that_process_dies(tmp_path):
    db = tmp_path / "s.duckdb"
    store = facts_store(db)
    command = [sys.executable, "-c", HOLD_RUN, str(db), FACTS]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_id = child.stdout.readline().strip()
        assert run_id, child.stderr.read()
        lock = tmp_path / f"s.duckdb.run-{run_id}.lock"
        assert lock.exists()
        # As a process of another container (its own pids) shows: a pid no process has here.
        with store.writing() as con:
            con.execute("UPDATE runs SET pid = 999999999 WHERE run_id = ?", [run_id])
        assert runner.mark_interrupted(store) == []
        assert runner.list_runs(store).set_index("run_id").loc[run_id, "status"] == "planned"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert runner.mark_interrupted(store) == [run_id]
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "interrupted"
    assert not lock.exists()  # cleaned up with the marking
    assert runner.mark_interrupted(store) == []  # once


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as two other users: needs root")
def test_a_run_of_another_users_live_process_is_left_alone(tmp_path):
    """A run stored before lock files (judged by its pid), whose process runs as another user: this
    process, acting as a third user (root may signal anyone), cannot signal it, and must not take it
    for dead."""
    shared = Path(tempfile.mkdtemp(prefix="sycoscope-users-", dir="/tmp"))  # tmp_path is root's only
    try:
        shared.chmod(0o777)
        db = shared / "s.duckdb"
        store = facts_store(db)
        sleeper = subprocess.Popen(["sleep", "300"], user=65534)
        try:
            wait_until(lambda: runner._process_start(sleeper.pid) is not None, "the sleeper's /proc entry")
            started = runner._process_start(sleeper.pid)
            plan = json.dumps({"host": socket.gethostname(), "process_start": started})
            with store.writing() as con:
                row = ["other-user", "running", "openai:fake", None, "{}", plan, 1, None, sleeper.pid]
                con.execute(sql.INSERT_RUN, row)
            for path in shared.iterdir():
                path.chmod(0o666)

            def mark_as_a_third_user() -> list[str]:
                os.seteuid(65533)
                try:
                    return runner.mark_interrupted(Store(db))
                finally:
                    os.seteuid(0)

            assert mark_as_a_third_user() == []
            assert store.scalar(sql.RUN_STATUS, ["other-user"]) == "running"
        finally:
            sleeper.kill()
            sleeper.wait(timeout=30)
        assert mark_as_a_third_user() == ["other-user"]  # once it is gone, the same user marks it
    finally:
        shutil.rmtree(shared, ignore_errors=True)


def test_a_run_blocked_by_a_busy_store_stops_after_its_patience_and_sends_little_meanwhile(
    tmp_path, monkeypatch
):
    """A read held from the run's second request on, past the run's patience (2 s): the run stops
    about then, however many writes were waiting, sends no more than `concurrency` requests after
    the store became busy, and, its lock let go, is marked interrupted."""
    monkeypatch.setattr(runner, "BUSY_PATIENCE", 2.0)
    store = facts_store(tmp_path / "s.duckdb")
    held, release = threading.Event(), threading.Event()
    arrivals: list[float] = []
    held_at: list[float] = []

    def long_read() -> None:
        with store.reading() as con:
            con.execute("SELECT 1").fetchall()
            held.set()
            release.wait(120)

    reader = threading.Thread(target=long_read)

    def on_request(number: int) -> None:
        if number == 2:
            reader.start()
            held.wait(30)
            held_at.append(time.monotonic())
        arrivals.append(time.monotonic())

    concurrency = 4
    with SlowServer(delay=0.05, on_request=on_request) as server:
        spec = runner.RunSpec("openai:fake", (FACTS,), limit=10, base_url=server.url, concurrency=concurrency)
        the_plan = runner.plan(store, spec)
        run_id = runner.create_run(store, the_plan)
        try:
            with pytest.raises(StoreBusy, match=r"the run waited [0-9]+ s and gave up"):
                runner.execute(store, run_id, the_plan)
            stopped = time.monotonic()
        finally:
            release.set()
            if reader.is_alive():
                reader.join(timeout=60)
        assert held.is_set()
        waited = stopped - held_at[0]
        assert 2.0 <= waited < 2.0 + 8.0, f"the run stopped {waited:.1f} s after the store became busy"
        after = [t for t in arrivals if t > held_at[0]]
        assert len(after) <= concurrency, f"{len(after)} requests sent while the store was busy"
        stored = store.scalar(sql.COUNT["transcripts"])
        assert server.requests - stored <= concurrency + 1
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "running"  # the run could write nothing more
    assert runner.mark_interrupted(store) == [run_id]


# -- a process that ends while its read lease closes -----------------------------------------------

# Reads, then ends about when the idle lease is closed: the lease must be closed before the
# interpreter stops its threads (a thread stopped inside DuckDB's code aborts the process).
READ_AND_END = """
import sys, time
from lib.store import Store
Store(sys.argv[1]).scalar("SELECT count(*) FROM range(1000)")
time.sleep(float(sys.argv[2]))
"""


def test_a_process_ending_as_its_idle_read_lease_closes_ends_cleanly(tmp_path):
    db = tmp_path / "s.duckdb"
    Store(db)
    for n in range(10):
        pause = 0.09 + n * 0.005  # around the lease's IDLE (0.1 s), when the closer closes it
        done = subprocess.run(
            [sys.executable, "-c", READ_AND_END, str(db), str(pause)],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, (pause, done.returncode, done.stderr[-500:])
