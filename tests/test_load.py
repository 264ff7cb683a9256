"""Many sessions at once while the store is written, the short form of bench/bench_load.py: the real
dashboard on a small synthetic store, six sessions at once (five speaking Streamlit's websocket
protocol as the front end does, one in Chromium) while a run and an import write. Every page renders
its main element without an error, open pages are not rerun whole on every new transcript, and no
transcript is lost or stored twice. How fast is the bench's business, never a test's.

Also the caching the sessions share (pages/parts/reads.py): one computation of a missing value
however many sessions ask for it at once, and slow reads that never make a page wait while a run
writes."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench import bench_load, generate
from bench.bench_browser import _pages
from lib.store import Store, StoreError
from lib.view import browse
from pages.parts import reads
from tests.browser import dashboard
from tests.fake_vendor import FakeVendor

RUN_MODEL = "openai:load-test"  # answered by the fake vendor on loopback


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("load") / "small.duckdb"
    generate.generate(db, per_model=1700, models=3)  # up to the answer set
    return db


def test_sessions_at_once_while_a_run_and_an_import_write(small, tmp_path):
    db = bench_load.copy_store(small, tmp_path)
    store = Store(db)
    pages = {name: spec for name, spec in _pages(store).items() if name in bench_load.PAGES}
    lines = bench_load.import_file(store, tmp_path / "replies.jsonl", 200)
    before = bench_load.census(store, RUN_MODEL)
    imported: list[subprocess.CompletedProcess] = []

    with FakeVendor() as vendor, dashboard(db, tmp_path / "streamlit.log") as base:
        bench_load.sessions(base, pages, bench_load.Load(1, 0, 1))  # the server's first session
        model = ("--model", RUN_MODEL, "--base-url", vendor.openai_url)
        run = bench_load.start_run(db, tmp_path / "run.log", 279, model)  # every item of the set
        try:
            bench_load.wait_first_write(store, run, RUN_MODEL, timeout=120)
            started = threading.Event()

            def import_while_they_read() -> None:
                started.wait()
                time.sleep(2)
                command = [sys.executable, "-m", "lib", "import", str(tmp_path / "replies.jsonl")]
                imported.append(
                    subprocess.run(
                        command,
                        cwd=bench_load.REPO,
                        env=bench_load.lib_env(db),
                        capture_output=True,
                        timeout=300,
                    )
                )

            importer = threading.Thread(target=import_while_they_read)
            importer.start()
            visits = bench_load.sessions(base, pages, bench_load.Load(5, 1, 1, dwell=4.0), started)
            wrote_throughout = run.poll() is None
        finally:
            bench_load.finish_run(store, run, RUN_MODEL)
        importer.join()
        tracebacks = bench_load.server_tracebacks(tmp_path / "streamlit.log")

    assert len(visits) == 6 * len(bench_load.PAGES)
    assert [(v.client, v.page, v.problems) for v in visits if v.ms is None or v.problems] == []
    assert tracebacks == []
    assert wrote_throughout, "the run ended before the sessions did: nothing was read while it wrote"
    # a page left open while the run writes shows the run's counts; it is not rerun whole
    assert sum(v.app_reruns for v in visits if v.client == "websocket") == 0

    assert imported[0].returncode == 0, imported[0].stderr
    after = bench_load.census(store, RUN_MODEL)
    assert after["run_status"] == "cancelled" and after["run_failed"] == 0
    assert after["run_stored"] == after["run_done"] > 0
    assert after["imported"] == lines == 200
    assert after["transcripts"] == before["transcripts"] + after["run_stored"] + lines
    assert after["duplicated"] == 0 and after["distinct_ids"] == after["transcripts"]


# -- the caching the sessions share ---------------------------------------------------------------
computed: list[float] = []


def counted(store: Store) -> tuple:
    """A real read that takes a while, counting its computations."""
    computed.append(time.monotonic())
    time.sleep(0.3)
    return browse.data_version(store)


def at_once(n: int, call) -> list:
    results: list = [None] * n
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, call())) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def wait_for(condition, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"waited {seconds:.0f} s for {what}"
        time.sleep(0.05)


def test_sessions_asking_at_once_for_a_missing_value_share_one_computation(small):
    computed.clear()
    version = ("a version no other test uses", time.time())
    results = at_once(6, lambda: reads._call(__name__, "counted", str(small), version, (), ()))
    assert len(computed) == 1
    assert results == [results[0]] * 6 and results[0] == browse.data_version(Store(small))


def test_a_slow_read_waits_for_no_one_while_a_run_writes(small, monkeypatch):
    latest = reads.Latest()
    store = Store(small)
    release = threading.Event()
    calls: list[int] = []

    def tables() -> dict:
        calls.append(1)
        if len(calls) > 1:
            release.wait(30)  # the refresh, held until the test lets it go
        return browse.metric_tables(store)

    # six sessions at once on a cold key: one computation
    first = at_once(6, lambda: latest.get(("k",), ("v1",), True, tables))
    assert len(calls) == 1 and all(r["accuracy"].equals(first[0]["accuracy"]) for r in first)

    # new data while a run writes: the value there is, at once, and one refresh in the background
    monkeypatch.setattr(reads, "FOLLOW_EVERY", 0.0)
    monkeypatch.setattr(reads, "FOLLOW_COST", 0)
    # (the refresh is held until `release`: six readers returning at all proves none waited for it)
    stale = at_once(6, lambda: latest.get(("k",), ("v2",), True, tables))
    assert all(r["accuracy"].equals(first[0]["accuracy"]) for r in stale)
    wait_for(lambda: len(calls) == 2, "the refresh to start")
    assert len(calls) == 2 and latest.refreshing == {("k",)}  # one refresh, however many asked
    release.set()
    wait_for(lambda: latest.values[("k",)][0] == ("v2",) and not latest.refreshing, "the refresh to end")

    # a value newer than FOLLOW_EVERY is not refreshed while the run writes
    monkeypatch.setattr(reads, "FOLLOW_EVERY", 3600.0)
    latest.get(("k",), ("v3",), True, tables)
    assert len(calls) == 2 and not latest.refreshing

    # no run going: the page waits for the data as they are
    assert latest.get(("k",), ("v3",), False, tables) is not None and len(calls) == 3
    assert latest.values[("k",)][0] == ("v3",)

    # each reader gets its own copy
    mine = latest.get(("k",), ("v3",), False, tables)
    assert not mine["accuracy"].empty
    mine["accuracy"].loc[:, "n"] = -1
    assert (latest.get(("k",), ("v3",), False, tables)["accuracy"]["n"] > 0).all()


def test_when_a_run_ends_the_slow_reads_catch_up_though_another_run_goes_on(monkeypatch):
    """A finished run's last answers must reach the pages at once, even while another run (a seed,
    a second operator) keeps `going` true."""
    latest = reads.Latest()
    monkeypatch.setattr(reads, "FOLLOW_EVERY", 3600.0)  # no background refresh in this test
    versions = iter(["made at v1", "made at v2"])
    assert latest.get(("k",), ("v1",), True, lambda: next(versions)) == "made at v1"
    assert latest.get(("k",), ("v2",), True, lambda: next(versions)) == "made at v1"  # throttled
    latest.settle()  # moved_on: a run ended
    assert latest.get(("k",), ("v2",), True, lambda: next(versions)) == "made at v2"


def test_a_failing_background_refresh_is_not_retried_on_every_read(monkeypatch):
    latest = reads.Latest()
    attempts: list[int] = []

    def failing() -> str:
        attempts.append(1)
        raise StoreError("the store is busy")

    monkeypatch.setattr(reads, "FOLLOW_EVERY", 60.0)
    latest.get(("k",), ("v1",), True, lambda: "first")
    latest.values[("k",)] = (("v1",), time.monotonic() - 3600, "first")  # an hour old: due
    latest.get(("k",), ("v2",), True, failing)
    wait_for(lambda: attempts and not latest.refreshing, "the failed refresh")
    for _ in range(20):  # the failure counts as an attempt: the next one waits FOLLOW_EVERY
        assert latest.get(("k",), ("v2",), True, failing) == "first"
        wait_for(lambda: not latest.refreshing, "no refresh")
    assert len(attempts) == 1


def test_a_lagging_slow_read_says_how_old_it_is(monkeypatch):
    latest = reads.Latest()
    monkeypatch.setattr(reads, "FOLLOW_EVERY", 3600.0)
    latest.get(("k",), ("v1",), True, lambda: "made at v1")
    assert latest.age(("k",), ("v1",)) is None  # up to date: nothing to say
    latest.get(("k",), ("v2",), True, lambda: "made at v2")  # a run goes on: the old value stays
    assert latest.age(("k",), ("v2",)) >= 0
