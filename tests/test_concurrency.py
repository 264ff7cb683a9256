"""Two writer processes and several reader threads on one store at once: nothing fails, nothing is
lost, and readers never see a count go back."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading
import time

import pytest

from lib.measure import grading
from lib.paths import REPO
from lib.probes import probesets
from lib.run import runner
from lib.store import Store, StoreBusy, sql
from lib.store.database import _writer_waiting
from tests.fake_vendor import FakeVendor, Hang

SECONDS = 10.0
READERS = 4

# One item and one probe per transaction, through Store.ingest (Store.writing() inside), for
# SECONDS; prints how many it wrote.
WRITER = """
import json, sys, time
from lib.probes.items import Item, Probe, item_id, user
from lib.store import Store
from tests.fixtures import a_set

path, name, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
store = Store(path)
set_id = f"test/{name}"
written = 0
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    iid = item_id(set_id, written)
    item = Item(iid, set_id, "answer", f"question {written}", {"correct_answer": str(written)})
    probe = Probe(iid, "neutral", (user(f"question {written}"),))
    added = store.ingest(a_set(set_id, "answer", name), [(item, [probe])])
    assert added == (1, 1), added
    written += 1
print(json.dumps({"written": written}))
"""


def test_two_writer_processes_and_reader_threads(tmp_path):
    path = tmp_path / "s.duckdb"
    Store(path)  # the schema exists before anyone reads
    writers = {
        name: subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, str(SECONDS)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("writer-1", "writer-2")
    }
    seen: list[list[dict[str, int]]] = [[] for _ in range(READERS)]
    failures: list[BaseException] = []

    def read(observations: list[dict[str, int]]) -> None:
        store = Store(path)
        try:
            while any(w.poll() is None for w in writers.values()):
                sets = store.stats()["sets"]
                observations.append({name: sets.get(f"test/{name}", {}).get("items", 0) for name in writers})
                time.sleep(0.005)
        except BaseException as e:  # reported below: the test fails on any reader error
            failures.append(e)

    threads = [threading.Thread(target=read, args=(observations,)) for observations in seen]
    for thread in threads:
        thread.start()
    outputs = {name: w.communicate(timeout=SECONDS + 120) for name, w in writers.items()}
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    for name, (_, err) in outputs.items():
        assert writers[name].returncode == 0, err
    written = {name: json.loads(out)["written"] for name, (out, _) in outputs.items()}
    final = Store(path).stats()["sets"]
    assert {name: final[f"test/{name}"]["items"] for name in writers} == written
    assert {name: final[f"test/{name}"]["probes"] for name in writers} == written
    assert all(n > 10 for n in written.values()), written

    for observations in seen:
        assert len(observations) > 10
        for name in writers:
            counts = [o[name] for o in observations]
            assert counts == sorted(counts), f"a reader saw {name}'s count go back"
    # The writers interleaved: readers saw both part-way at once, more than once.
    midway = [o for obs in seen for o in obs if all(0 < o[name] < written[name] for name in writers)]
    assert len({tuple(o.values()) for o in midway}) > 2


# -- one process: a writer among readers, the read lease ------------------------------------------

# A read that takes a few milliseconds and lets go of the GIL, so that reader threads overlap.
SLOW_READ = "SELECT count(*) FROM range(3000000) t(i) WHERE i % 7 = 0"


def test_a_waiting_writer_stops_new_reads_of_its_own_process(tmp_path):
    store = Store(tmp_path / "s.duckdb", timeout=30)
    reads: list[tuple[float, float]] = []  # (began, ended) of each read
    stop = threading.Event()
    failures: list[BaseException] = []

    def read() -> None:
        try:
            while not stop.is_set():
                began = time.monotonic()
                store.scalar(SLOW_READ)
                reads.append((began, time.monotonic()))
        except BaseException as e:  # reported below
            failures.append(e)

    readers = [threading.Thread(target=read) for _ in range(READERS)]
    for reader in readers:
        reader.start()
    wait_for(lambda: len(reads) >= READERS, "the readers' first reads")  # they keep the lease busy
    gate_taken: list[float] = []  # when the writer was first seen holding the gate

    def watch_gate() -> None:
        while not gate_taken and not stop.is_set():
            if _writer_waiting(store.gate_path):
                gate_taken.append(time.monotonic())
            time.sleep(0.001)

    watcher = threading.Thread(target=watch_gate)
    watcher.start()
    asked = time.monotonic()
    with store.writing() as con:
        entered = time.monotonic()
        con.execute("INSERT INTO meta VALUES ('written', 'yes')")
    watcher.join(timeout=30)
    wait_for(lambda: any(b > entered for b, _ in reads), "a read after the write")  # readers go on
    stop.set()
    for reader in readers:
        reader.join(timeout=60)

    assert failures == []
    assert entered - asked < 3.0, f"the writer waited {entered - asked:.1f} s among readers"
    # No read that began once the writer held the gate was served before it: they queued behind it.
    # (The watcher sees the gate taken a little after it was; reads begun in between are not judged.)
    assert gate_taken, "the writer was never seen holding the gate"
    overtaking = [(b, e) for b, e in reads if b > gate_taken[0] and e < entered]
    assert overtaking == []
    assert store.scalar("SELECT value FROM meta WHERE key = 'written'") == "yes"


def test_reads_start_no_thread_each_and_the_lease_closes_when_idle(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    store.scalar("SELECT 1")  # whatever the lease starts once, it has started
    time.sleep(0.5)
    before = threading.active_count()
    most = before
    for _ in range(300):
        store.scalar("SELECT count(*) FROM meta")
        most = max(most, threading.active_count())
    assert most <= before + 1, f"{most - before} threads more during 300 reads"
    # Idle, the lease lets go of the file: another process could take it for writing.
    fd = os.open(store.lock_path, os.O_RDWR)
    try:
        wait_for(lambda: _try_exclusive(fd), "the idle lease letting go of the file")
    finally:
        os.close(fd)


def _try_exclusive(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # a reader still holds it
        return False
    return True


def wait_for(condition, what: str, seconds: float = 30.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `seconds` (a loaded machine is slow,
    never wrong)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {seconds:g} s"
        time.sleep(0.01)


def test_a_background_run_outlasts_a_read_longer_than_the_store_timeout(tmp_path, monkeypatch):
    """A read held on a store whose timeout is 1 s until the run has waited 2 s to write: the run's
    writes find the store busy, wait, say so in the runs' listing, and get in when the read ends;
    nothing fails, nothing is sent twice."""
    monkeypatch.setattr(runner, "RETRY_DELAYS", (0.01, 0.01))
    monkeypatch.setattr(runner, "BUSY_PAUSE", 0.2)
    store = Store(tmp_path / "s.duckdb", timeout=1.0)
    # The dashboard's reads wait longer than a run's tries to write (BUSY_TRY): they get in between
    # two tries. The test reads so too.
    patient = store.with_timeout(30)
    facts = probesets.get("builtin/facts-answer")
    store.ingest(facts, facts.load())
    with FakeVendor() as vendor:
        # The first request hangs until the client's timeout (3 s) and is sent again: time for the
        # long read to begin before anything is written.
        vendor.script(Hang())
        spec = runner.RunSpec(
            "openai:fake", (facts.set_id,), limit=1, base_url=vendor.openai_url, concurrency=1, timeout=3
        )
        run_id = runner.start_background(store, spec, grading.grade_run)
        while patient.scalar(sql.RUN_STATUS, [run_id]) != "running":
            time.sleep(0.01)
        held, release = threading.Event(), threading.Event()

        def long_read() -> None:
            with store.reading() as con:
                con.execute("SELECT count(*) FROM transcripts").fetchall()
                held.set()
                release.wait(60)

        reader = threading.Thread(target=long_read)
        reader.start()
        held.wait(10)
        messages: list[str] = []
        deadline = time.monotonic() + 60
        while not any(m.startswith("store busy, waiting… ") and int(m.split()[-2]) >= 2 for m in messages):
            assert time.monotonic() < deadline, messages
            messages += [m for m in runner.list_runs(patient)["message"] if isinstance(m, str)]
            time.sleep(0.1)
        assert patient.scalar(sql.COUNT["transcripts"]) == 0  # still waiting, well past the timeout
        release.set()
        reader.join()
        runner._background[run_id].join(timeout=60)
        sent = len(vendor.requests)

    assert patient.scalar(sql.RUN_STATUS, [run_id]) == "done"
    # Each probe sent once (the hung request aside), and stored once.
    assert sent == 1 + 4
    assert patient.scalar("SELECT n_done FROM runs WHERE run_id = ?", [run_id]) == 4
    assert patient.scalar(sql.COUNT["transcripts"]) == 4
    assert not list(store.path.parent.glob("*.run-*.lock"))  # the run's lock file went with it
    graded = patient.scalar("SELECT count(DISTINCT transcript_id) FROM grades WHERE grader = 'alias'")
    assert graded == 4
    assert runner.store_wait(run_id) is None  # no longer waiting


def test_a_run_waits_for_a_busy_store_saying_so_and_gives_up_in_bounded_time(tmp_path, monkeypatch):
    """What the command line shows (on_busy), and the bound: BUSY_PATIENCE in all."""
    monkeypatch.setattr(runner, "BUSY_PAUSE", 0.1)
    store = Store(tmp_path / "s.duckdb", timeout=0.5)
    facts = probesets.get("builtin/facts-answer")
    store.ingest(facts, facts.load())
    the_plan = runner.plan(store, runner.RunSpec("openai:fake", (facts.set_id,), limit=1))

    def hold(seconds: float) -> threading.Thread:
        held = threading.Event()

        def long_read() -> None:
            with store.reading() as con:
                con.execute("SELECT 1").fetchall()
                held.set()
                time.sleep(seconds)

        thread = threading.Thread(target=long_read)
        thread.start()
        held.wait(5)
        return thread

    reader = hold(2.5)
    waits: list[float] = []
    began = time.monotonic()
    run_id = runner.create_run(store, the_plan, on_busy=waits.append)
    assert time.monotonic() - began > 2.0  # it waited for the read to end
    reader.join()
    assert len(waits) >= 2 and waits == sorted(waits) and waits[-1] > 1.0
    assert store.query("SELECT run_id, status FROM runs") == [(run_id, "planned")]  # once

    monkeypatch.setattr(runner, "BUSY_PATIENCE", 1.0)
    reader = hold(3.0)
    began = time.monotonic()
    with pytest.raises(StoreBusy, match=r"is busy: .* \(the run waited [0-9]+ s and gave up\)"):
        runner.create_run(store, the_plan)
    assert time.monotonic() - began < 2.5
    reader.join()
    assert store.scalar("SELECT count(*) FROM runs") == 1


# -- one thread: reads inside reads, a write inside a read -----------------------------------------


def test_a_write_inside_a_read_on_the_same_thread_is_refused_at_once(tmp_path):
    store = Store(tmp_path / "s.duckdb", timeout=30)
    began = time.monotonic()
    with store.reading() as con:
        con.execute("SELECT 1").fetchall()
        refused = r"a write to store .* inside a read of it on the same thread"
        with pytest.raises(RuntimeError, match=refused), store.writing():
            pass
    assert time.monotonic() - began < 10, "the write waited for the store's timeout"
    with store.writing() as con:  # the read over, the store takes writes
        con.execute("INSERT INTO meta VALUES ('after', 'yes')")
    assert store.scalar("SELECT value FROM meta WHERE key = 'after'") == "yes"


def test_a_read_inside_a_read_goes_on_while_a_writer_waits_for_the_outer_one(tmp_path):
    store = Store(tmp_path / "s.duckdb", timeout=30)
    wrote = threading.Event()

    def write() -> None:
        with store.writing() as con:
            con.execute("INSERT INTO meta VALUES ('written', 'yes')")
        wrote.set()

    writer = threading.Thread(target=write)
    with store.reading() as outer:
        outer.execute("SELECT 1").fetchall()
        writer.start()
        wait_for(lambda: _writer_waiting(store.gate_path), "the writer at the gate")
        began = time.monotonic()
        with store.reading() as inner:  # the writer waits for the outer read: this must not wait
            assert inner.execute("SELECT count(*) FROM meta").fetchone()[0] >= 1
        assert time.monotonic() - began < 10, "the inner read waited behind the writer"
        assert not wrote.is_set()  # the writer still waits for the outer read
    writer.join(timeout=60)
    assert wrote.is_set()
    assert store.scalar("SELECT value FROM meta WHERE key = 'written'") == "yes"


def test_a_reader_waits_for_another_thread_opening_the_file_only_until_its_own_timeout(tmp_path):
    """A thread opening the read lease waits for the lock (here held by a writer of 'another
    process') outside the lease's condition: a reader with a short timeout gives up on time."""
    store = Store(tmp_path / "s.duckdb", timeout=30)
    fd = os.open(store.lock_path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer writing
    results: list[object] = []
    opener = threading.Thread(target=lambda: results.append(store.scalar("SELECT 42")))
    try:
        opener.start()
        wait_for(lambda: store._lease.opening, "the opener waiting for the lock")
        began = time.monotonic()
        with pytest.raises(StoreBusy, match="is busy"):
            store.with_timeout(0.5).scalar("SELECT 1")
        assert time.monotonic() - began < 10, "the reader waited past its timeout for the opener"
    finally:
        os.close(fd)  # the writer is done
    opener.join(timeout=60)
    assert results == [42]
