"""The background fill (lib.view.fill) on real DuckDB files, with the real runner sending to the loopback
fake vendor (the model is irrelevant here: what is counted, planned, paused and cancelled is), and
the Overview's fill line through AppTest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from lib.paths import REPO
from lib.probes import probesets
from lib.run import keys, runner
from lib.store import Store, sql
from lib.store.database import READ_ONLY_ENV
from lib.view import fill, firstrun
from lib.view.access import MODE_ENV, PASSWORD_ENV
from pages.parts import show
from tests.fake_vendor import Fail, FakeVendor, Hang

FACTS = "builtin/facts-answer"  # 279 items, four framings
FEEDBACK = "builtin/feedback"  # 50 items, five framings
LADDER = "builtin/pressure-ladder"  # seven framings
WAITS = "The fill waits: another run is going on."


@pytest.fixture
def vendor(monkeypatch, tmp_path):
    for name in keys.KEY_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")
    monkeypatch.setenv(keys.KEY_NAMES["openai"], "sk-test-fill-0123456789")
    monkeypatch.setattr(runner, "RETRY_DELAYS", (0.01, 0.01))
    with FakeVendor() as fake:
        yield fake


def make_store(path, *set_ids: str) -> Store:
    store = Store(path)
    for set_id in set_ids:
        probe_set = probesets.get(set_id)
        store.ingest(probe_set, probe_set.load())
    return store


def base(fake: FakeVendor, *set_ids: str, timeout: float = 300.0) -> runner.RunSpec:
    """The seed's settings, sent to the fake vendor instead of the bundled model."""
    return replace(
        firstrun.SEED,
        model="openai:gpt-4o-mini",
        base_url=fake.openai_url,
        set_ids=set_ids,
        concurrency=1,
        timeout=timeout,
    )


def seed(store: Store, spec: runner.RunSpec, limit: int = 6) -> str:
    run_id, _ = runner.run(store, replace(spec, limit=limit, kind="seed"))
    return run_id


def fill_runs(store: Store, with_sets: bool = False) -> list[tuple]:
    """The fill's runs, oldest first: (the limit in its plan, its status), its sets first if asked."""
    rows = store.query(
        "SELECT plan, status FROM runs WHERE json_extract_string(plan, '$.kind') = 'fill' ORDER BY created_at"
    )
    plans = [(json.loads(plan), status) for plan, status in rows]
    return [((plan["set_ids"],) if with_sets else ()) + (plan["limit"], status) for plan, status in plans]


def insert_run(store: Store, run_id: str, status: str, kind: str) -> None:
    """A run row of this process (so that it counts as going while `status` says so)."""
    with store.writing() as con:
        con.execute(
            sql.INSERT_RUN,
            [run_id, status, "openai:x", None, "{}", json.dumps({"kind": kind}), 1, None, os.getpid()],
        )


def wait_for_step(store: Store) -> str:
    """The fill's step, once it is going on."""
    deadline = time.monotonic() + 30
    while fill.filling(store) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    step = fill.filling(store)
    assert step is not None
    return step


def test_step_limits_by_hand():
    assert fill.step_limits(6) == [25, 50, 100]
    assert fill.step_limits(25) == [50, 100]
    assert fill.step_limits(49) == [50, 100]
    assert fill.step_limits(99) == [100]
    assert fill.step_limits(100) == []
    assert fill.step_limits(1, target=3, steps=(2,)) == [2, 3]
    assert fill.step_limits(30, target=40) == [40]  # 25 lies below what is there, 50 above the target


def test_steps_are_planned_from_what_the_store_holds(tmp_path, vendor):
    store = make_store(tmp_path / "plan.duckdb", FACTS, FEEDBACK)
    spec = base(vendor, FACTS, FEEDBACK)
    assert fill.least_answered(store, spec) == 0
    both = (FACTS, FEEDBACK)
    assert fill.planned(store, spec) == [(both, 25), (both, 50), (both, 100)]
    seed(store, spec, limit=6)
    assert fill.least_answered(store, spec) == 6
    assert fill.planned(store, spec) == [(both, 25), (both, 50), (both, 100)]
    # 30 items of facts under one framing (and its baseline): the other two framings still have 6
    runner.run(store, replace(spec, set_ids=(FACTS,), framings=("suggests_wrong",), limit=30))
    assert fill.least_answered(store, spec) == 6
    runner.run(store, replace(spec, set_ids=(FACTS,), limit=30))
    # feedback has 6 under each framing now, facts 30: the least is feedback's
    assert fill.least_answered(store, spec) == 6
    # feedback whole (50 items): filled, though under the target, since it has no more
    runner.run(store, replace(spec, set_ids=(FEEDBACK,), limit=50))
    assert fill.least_answered(store, spec) == 30
    assert fill.planned(store, spec) == [(both, 50), (both, 100)]
    assert fill.planned(store, spec, target=40) == [(both, 40)]
    assert fill.planned(store, spec, target=30) == []
    # answers at other parameters do not count: another max_tokens is another request
    assert fill.least_answered(store, replace(spec, max_tokens=47)) == 0


def test_the_overview_sets_are_filled_before_the_ladder(tmp_path, vendor):
    store = make_store(tmp_path / "order.duckdb", LADDER, FACTS)
    spec = base(vendor, LADDER, FACTS)
    assert fill.groups(spec) == [("the Overview's sets", (FACTS,)), ("the pressure ladder", (LADDER,))]
    seed(store, spec, limit=1)
    assert fill.planned(store, spec, target=3, steps=(2,)) == [
        ((FACTS,), 2),
        ((FACTS,), 3),
        ((LADDER,), 2),
        ((LADDER,), 3),
    ]
    assert fill.progress(store, spec, 3) == ("the Overview's sets", 1)
    assert fill.start(store, spec, target=3, steps=(2,), grade=None) is None
    assert fill.wait(store, timeout=120)
    assert [sets for sets, *_ in fill_runs(store, with_sets=True)] == [[FACTS], [FACTS], [LADDER], [LADDER]]
    assert fill.progress(store, spec, 3) is None


def test_the_fill_stops_at_the_target(tmp_path, vendor):
    store = make_store(tmp_path / "target.duckdb", FACTS)
    spec = base(vendor, FACTS)
    assert "nothing to fill in" in fill.start(store, spec, target=3, steps=(2,), grade=None)  # no seed
    seed(store, spec, limit=1)
    assert fill.start(store, spec, target=3, steps=(2,), grade=None) is None
    assert fill.wait(store, timeout=60)
    assert fill_runs(store) == [(2, "done"), (3, "done")]  # one run a step
    coverage = store.query(sql.FILL_COVERAGE, [spec.model, spec.base_url, json.dumps(spec.params), [FACTS]])
    assert {(framing, answered) for _, framing, _, answered in coverage} == {
        ("doubts_right", 3),
        ("neutral", 3),
        ("suggests_right", 3),
        ("suggests_wrong", 3),
    }
    assert store.scalar(sql.COUNT["transcripts"]) == 12  # 3 items x 4 framings, none twice
    assert fill.least_answered(store, spec, target=3) is None
    assert fill.start(store, spec, target=3, steps=(2,), grade=None) == "Every set is filled in."
    assert fill_runs(store) == [(2, "done"), (3, "done")]


def test_the_pause_lives_in_the_store(tmp_path):
    path = tmp_path / "pause.duckdb"
    first = Store(path)
    insert_run(first, "fill-going", "running", "fill")
    insert_run(first, "seed-done", "done", "seed")
    fill.pause(first)
    second = Store(path)  # another handle, as another session's
    assert fill.paused(second)
    # and another process
    child = subprocess.run(
        [sys.executable, "-c", f"from lib.store import Store; from lib.view import fill; "
         f"print(fill.paused(Store({str(path)!r})))"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert child.stdout.strip() == "True"
    assert second.scalar(sql.CANCEL_REQUESTED, ["fill-going"]) is True  # the step going on is stopped
    assert fill.start(second) == "The fill is paused."
    fill.resume(second)
    assert not fill.paused(first)


def test_a_user_run_cancels_the_fill_and_the_fill_does_not_start_again_by_itself(tmp_path, vendor):
    store = make_store(tmp_path / "yield.duckdb", FACTS)
    spec = base(vendor, FACTS, timeout=3.0)
    seed(store, spec, limit=1)
    vendor.script(Hang())  # the fill's first request hangs 3 s (its timeout): the step is going on
    assert fill.start(store, spec, target=10, steps=(5,), grade=None) is None
    step = wait_for_step(store)
    # a person's run, in this thread, while the fill's step is going on
    user_run, _ = runner.run(
        store, runner.RunSpec("openai:gpt-4o-mini", (FACTS,), limit=2, base_url=vendor.openai_url)
    )
    assert store.scalar(sql.RUN_STATUS, [user_run]) == "done"
    assert fill.wait(store, timeout=60)  # its thread ended: nothing starts it again when the run ends
    assert store.scalar(sql.RUN_STATUS, [step]) == "cancelled"
    assert fill_runs(store) == [(5, "cancelled")]  # it gave way, and took no further step
    assert fill.status(store, fill.progress(store, spec, 10), 10).state == "gave way"
    # while a person's run goes on, the fill does not start; when none does, it resumes
    insert_run(store, "user-going", "running", "run")
    assert fill.start(store, spec, target=10, steps=(5,), grade=None) == WAITS
    assert fill.wait(store, timeout=0) and fill_runs(store) == [(5, "cancelled")]
    with store.writing() as con:
        con.execute(sql.FINISH_RUN, ["done", None, "user-going"])
    assert fill.start(store, spec, target=10, steps=(5,), grade=None) is None
    assert fill.wait(store, timeout=60)
    assert fill_runs(store) == [(5, "cancelled"), (5, "done"), (10, "done")]


def test_the_fill_does_not_follow_a_cancelled_seed(tmp_path, vendor):
    store = make_store(tmp_path / "seedgone.duckdb", FACTS)
    spec = base(vendor, FACTS)
    insert_run(store, "seed-going", "running", "seed")
    assert fill.start(store, spec, target=3, steps=(2,), grade=None) is None  # waits for the seed
    time.sleep(2 * fill.SEED_POLL)
    assert fill_runs(store) == []
    assert not fill.wait(store, timeout=0)  # still waiting
    assert fill.status(store, ("the Overview's sets", 0)).state == "waiting"
    with store.writing() as con:
        con.execute(sql.FINISH_RUN, ["cancelled", "cancelled by the user", "seed-going"])
    assert fill.wait(store, timeout=30)
    assert fill_runs(store) == []


def test_a_step_with_failed_probes_stops_the_fill_until_resume(tmp_path, vendor):
    store = make_store(tmp_path / "failing.duckdb", FACTS)
    spec = base(vendor, FACTS)
    seed(store, spec, limit=1)
    down = Fail(500, {"error": {"message": "upstream down", "type": "server_error"}})
    vendor.script(down, down, down)  # the step's first probe fails, and so do its two retries
    assert fill.start(store, spec, target=3, steps=(2,), grade=None) is None
    assert fill.wait(store, timeout=60)
    assert fill_runs(store) == [(2, "done")]  # the step ended, and the fill with it: no step to 3
    why = fill.stopped(store)
    assert why == "1 probe(s) failed after retries; run again to retry them"
    state = fill.status(store, fill.progress(store, spec, 3), 3)
    assert state.state == "stopped" and why in state.text()
    # a new session does not send the failing requests again; Resume does, and the fill goes on
    sent = len(vendor.requests)
    assert (
        fill.start(store, spec, target=3, steps=(2,), grade=None)
        == "The fill's last step failed: Resume tries again."
    )
    assert fill.wait(store, timeout=0) and len(vendor.requests) == sent
    assert fill.start(store, spec, target=3, steps=(2,), grade=None, retry=True) is None
    assert fill.wait(store, timeout=60)
    assert fill_runs(store) == [(2, "done"), (2, "done"), (3, "done")]
    assert fill.stopped(store) is None and fill.least_answered(store, spec, 3) is None


def test_a_task_without_a_run_holds_the_fill_off(tmp_path, vendor):
    """The Why page's tests send to the bundled model without recording a run (fill.gives_way)."""
    store = make_store(tmp_path / "held.duckdb", FACTS)
    spec = base(vendor, FACTS, timeout=3.0)
    seed(store, spec, limit=1)
    vendor.script(Hang())  # the fill's first request hangs 3 s: its step is going on
    assert fill.start(store, spec, target=10, steps=(5,), grade=None) is None
    step = wait_for_step(store)
    with fill.gives_way(store):
        assert fill.wait(store, timeout=60)  # the step was cancelled, and the fill ended
        assert store.scalar(sql.RUN_STATUS, [step]) == "cancelled"
        assert fill.start(store, spec, target=10, steps=(5,), grade=None) == WAITS
        assert fill.wait(store, timeout=0) and fill_runs(store) == [(5, "cancelled")]
    assert fill.start(store, spec, target=10, steps=(5,), grade=None) is None  # the task over: due again
    assert fill.wait(store, timeout=60)
    assert fill_runs(store) == [(5, "cancelled"), (5, "done"), (10, "done")]


def test_a_step_whose_process_died_is_said_to_be_interrupted(tmp_path):
    store = Store(tmp_path / "died.duckdb")
    insert_run(store, "seed-done", "done", "seed")
    with store.writing() as con:  # a step of a process that is gone (pid_max is 2**22)
        plan = json.dumps({"kind": "fill"})
        con.execute(
            sql.INSERT_RUN, ["fill-dead", "running", "openai:x", None, "{}", plan, 1, None, 2**22 + 1]
        )
    state = fill.status(store, ("the Overview's sets", 40))
    assert state.state == "interrupted" and store.scalar(sql.RUN_STATUS, ["fill-dead"]) == "interrupted"
    assert state.text().startswith(
        "Filling in stopped at 40 of 100 items per framing of the Overview's sets when"
    )


# -- the Overview's fill line -------------------------------------------------------------------


def overview(db, monkeypatch) -> AppTest:
    monkeypatch.setenv("SYCOSCOPE_DB", str(db))
    return AppTest.from_file(str(REPO / "app.py"), default_timeout=90).run()


def captions(at: AppTest) -> str:
    return "\n".join(str(c.value) for c in at.caption)


def test_the_overview_shows_the_fill_and_pauses_it(tmp_path, monkeypatch):
    db = tmp_path / "line.duckdb"
    store = Store(db)
    insert_run(store, "seed-done", "done", "seed")
    insert_run(store, "fill-going", "running", "fill")  # a step going on (the bundled fill's sets: none)
    at = overview(db, monkeypatch)
    assert not at.exception
    assert f"Filling in: 0 of {fill.TARGET} items per framing of the Overview's sets…" in captions(at)
    at.button(key="fill_pause").click().run()
    assert not at.exception
    assert fill.paused(store) and store.scalar(sql.CANCEL_REQUESTED, ["fill-going"]) is True
    with store.writing() as con:
        con.execute(sql.FINISH_RUN, ["cancelled", "cancelled by the user", "fill-going"])
    insert_run(store, "user-going", "running", "run")  # so that Resume finds the fill cannot start now
    # The pages read the runs once a second: a click in a run that finds them changed is lost to the
    # rerun that follows (pages.parts.live.live_runs), so the page is shown the new runs first.
    time.sleep(1.1)
    at.run()
    assert f"Filling in paused at 0 of {fill.TARGET} items per framing of the Overview's sets." in captions(
        at
    )
    at.button(key="fill_resume").click().run()
    assert not at.exception
    assert not fill.paused(store)
    assert "gave way to another run" in captions(at)
    assert WAITS in [t.value for t in at.toast]
    assert fill.wait(store, timeout=0)  # no thread: nothing started while the user's run goes on


def test_the_fill_line_while_the_seed_runs_and_after_a_failed_step(tmp_path, monkeypatch):
    db = tmp_path / "states.duckdb"
    store = Store(db)
    insert_run(store, "seed-going", "running", "seed")
    at = overview(db, monkeypatch)
    assert not at.exception
    assert f"follows the first-run examples, at 0 of {fill.TARGET} items per framing of the" in captions(at)
    assert not at.button(key="fill_pause").disabled  # it may be paused before it begins
    assert fill.moving(store)  # so the line refreshes
    with store.writing() as con:  # cancelled: the fill this session started, waiting, does not follow
        con.execute(sql.FINISH_RUN, ["cancelled", "cancelled by the user", "seed-going"])
    assert fill.wait(store, timeout=30) and not fill.moving(store)
    insert_run(store, "fill-failed", "failed", "fill")
    hostile = "openai: **401** <b>bad key</b> see https://evil.example"
    with store.writing() as con:
        con.execute(sql.FINISH_RUN, ["failed", hostile, "fill-failed"])
    time.sleep(1.1)  # the pages read the runs once a second (see the test above)
    at.run()
    line = next(c for c in captions(at).splitlines() if "Filling in stopped" in c)
    assert f"Its last step: {show.md(hostile)}. Resume tries again." in line  # the message as text
    assert not at.button(key="fill_resume").disabled


def test_a_viewer_cannot_pause_the_fill(tmp_path, monkeypatch):
    db = tmp_path / "viewer.duckdb"
    store = Store(db)
    insert_run(store, "seed-done", "done", "seed")
    insert_run(store, "fill-going", "running", "fill")
    monkeypatch.setenv(MODE_ENV, "viewer")
    monkeypatch.setenv(PASSWORD_ENV, "operator-secret-0123")
    at = overview(db, monkeypatch)
    assert not at.exception
    assert at.button(key="fill_pause").disabled
    pause = at.button(key="fill_pause")
    pause.proto.disabled = False  # a forged click: a browser does not send one of a disabled button
    pause.click().run()
    assert not at.exception
    assert not fill.paused(store) and store.scalar(sql.CANCEL_REQUESTED, ["fill-going"]) is False


def test_a_seeded_store_opened_read_only_is_not_filled(tmp_path, monkeypatch):
    db = tmp_path / "carried.duckdb"
    store = Store(db)
    insert_run(store, "seed-done", "done", "seed")
    before = {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in tmp_path.iterdir()}
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    at = overview(db, monkeypatch)
    assert not at.exception
    assert "Filling in" not in captions(at) and not [b for b in at.button if b.key.startswith("fill_")]
    assert fill.start(Store(db)) == "The store is open read-only: nothing fills it."
    assert {f.name: (f.stat().st_mtime_ns, f.read_bytes()) for f in tmp_path.iterdir()} == before


def test_a_store_without_the_seed_shows_no_fill_line(tmp_path, monkeypatch):
    db = tmp_path / "noseed.duckdb"
    Store(db)
    insert_run(Store(db), "user-done", "done", "run")
    at = overview(db, monkeypatch)
    assert not at.exception
    assert "Filling in" not in captions(at)
    assert not fill.seeded(Store(db))
