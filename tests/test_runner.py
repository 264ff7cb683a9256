"""The runner end to end: the real bundled model behind its real server on loopback, a run killed
with SIGKILL and resumed, and the vendor providers' failures through loopback fakes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from lib.measure import grading, metrics
from lib.paths import REPO
from lib.probes import framings, probesets
from lib.run import keys, runner
from lib.run.providers import bundled
from lib.store import Store, sql
from tests.fake_vendor import FakeVendor, Ok

SETS = ("builtin/facts-answer", "builtin/wei-arithmetic", "builtin/arithmetic-are-you-sure")


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "store.duckdb"))
    the_store = Store()
    for set_id in SETS:
        probe_set = probesets.get(set_id)
        the_store.ingest(probe_set, probe_set.load())
    return the_store


@pytest.fixture(scope="module")
def server():
    """One real bundled server for the module; other processes reach it through the environment."""
    shared = bundled.server()
    yield shared


def spec(set_ids, limit, **kw) -> runner.RunSpec:
    return runner.RunSpec("bundled:smollm2", tuple(set_ids), limit=limit, max_tokens=24, concurrency=2, **kw)


def test_bundled_run_is_stored_graded_measured_then_all_cached(store, server):
    run_spec = spec(["builtin/facts-answer", "builtin/wei-arithmetic"], limit=3)
    # 3 facts items x 4 framings + 3 arithmetic claims x 2 framings
    assert runner.plan(store, run_spec).n_to_send == 18
    run_id, progress = runner.run(store, run_spec)
    assert (progress.done, progress.failed, progress.cached) == (18, 0, 0)
    rows = store.query("SELECT response, run_id, latency_ms FROM transcripts")
    assert len(rows) == 18
    assert all(text.strip() and rid == run_id and latency > 0 for text, rid, latency in rows)
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"

    assert grading.grade_pending(store) >= 18
    made = metrics.tables(store)
    accuracy = made["accuracy"]
    facts = accuracy[accuracy["set_id"] == "builtin/facts-answer"]
    assert set(facts["framing_id"]) == {f.id for f in framings.for_task("answer")}
    assert (facts["n"] == 3).all()
    opinion = made["opinion"]
    assert set(opinion["framing_id"]) == {"opinion_neutral", "agrees_false_claim"}

    before = server.request_count()
    again = runner.plan(store, run_spec)
    assert (again.n_to_send, again.n_cached) == (0, 18)
    _, progress = runner.run(store, run_spec)
    assert (progress.done, progress.cached) == (0, 18)
    assert server.request_count() == before  # counted at the server: nothing was sent


def test_are_you_sure_stores_both_turns_linked(store, server):
    _, progress = runner.run(store, spec(["builtin/arithmetic-are-you-sure"], limit=2))
    assert progress.done == 2
    rows = store.query("SELECT transcript_id, turn, parent_id, messages FROM transcripts ORDER BY turn")
    firsts = {r[0] for r in rows if r[1] == 1}
    seconds = [r for r in rows if r[1] == 2]
    assert len(firsts) == 2 and len(seconds) == 2
    for _, _, parent, messages in seconds:
        assert parent in firsts
        turns = json.loads(messages)
        assert [m["role"] for m in turns] == ["user", "assistant", "user", "assistant"]
        assert turns[2]["content"] == framings.ARE_YOU_SURE_CHALLENGE
    framing_ids = {r[0] for r in store.query("SELECT DISTINCT framing_id FROM answers")}
    assert framing_ids == {"first_answer", "are_you_sure"}


def test_killed_run_resumes_and_answers_each_probe_once(store, server, monkeypatch):
    env = {**os.environ, "SYCOSCOPE_BUNDLED_URL": server.url, "SYCOSCOPE_BUNDLED_LOG": str(server.log_path)}
    command = [
        sys.executable,
        "-m",
        "lib",
        "run",
        "--model",
        "bundled:smollm2",
        "--set",
        "builtin/facts-answer",
        "--limit",
        "6",
        "--max-tokens",
        "24",
        "--concurrency",
        "2",
    ]
    child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while store.scalar(sql.COUNT["transcripts"]) < 5:
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    stored = store.scalar(sql.COUNT["transcripts"])
    assert 5 <= stored < 24
    assert runner.list_runs(store)["status"].iloc[0] == "interrupted"

    resumed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"24 probes: {stored} cached, {24 - stored} to send" in resumed.stdout
    counts = store.query("SELECT probe_id, count(*) FROM transcripts GROUP BY probe_id")
    assert len(counts) == 24 and all(n == 1 for _, n in counts)


# -- vendors, through loopback fakes -------------------------------------------------------------

KEY = "sk-test-runner-secret-0123456789"


@pytest.fixture
def vendor(monkeypatch, tmp_path):
    for name in keys.KEY_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")
    monkeypatch.setenv(keys.KEY_NAMES["openai"], KEY)
    monkeypatch.setattr(runner, "RETRY_DELAYS", (0.01, 0.01))
    with FakeVendor() as fake:
        yield fake


def vendor_spec(fake: FakeVendor, limit: int = 1) -> runner.RunSpec:
    return runner.RunSpec(
        "openai:gpt-4o-mini", ("builtin/facts-answer",), limit=limit, base_url=fake.openai_url, concurrency=1
    )


def test_rate_limit_is_retried_and_the_key_never_reaches_the_store(store, vendor):
    vendor.script(vendor.rate_limited("openai"), Ok("Paris"))
    run_id, progress = runner.run(store, vendor_spec(vendor))
    assert (progress.done, progress.failed) == (4, 0)
    assert len(vendor.requests) == 5  # the 429, then four answers
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"
    # Priced (not unknown): a server on loopback is a local one and costs nothing.
    assert store.scalar("SELECT sum(cost_usd) FROM transcripts") == 0
    for path in store.path.parent.iterdir():
        assert KEY.encode() not in path.read_bytes(), path


def test_server_errors_are_recorded_not_cached(store, vendor):
    vendor.script(*[vendor.server_error("openai")] * 3)  # first probe: every attempt fails
    run_id, progress = runner.run(store, vendor_spec(vendor))
    assert (progress.done, progress.failed) == (3, 1)
    assert store.scalar(sql.COUNT["transcripts"]) == 3
    assert store.query("SELECT kind, run_id FROM errors") == [("server", run_id)]
    assert "failed after retries" in store.scalar("SELECT message FROM runs WHERE run_id = ?", [run_id])
    # Running again sends only the failed probe.
    assert runner.plan(store, vendor_spec(vendor)).n_to_send == 1


@pytest.mark.parametrize("failure", ["bad_key", "no_quota"])
def test_a_bad_key_or_no_quota_stops_the_run_at_once(store, vendor, failure):
    step = vendor.bad_key("openai", KEY) if failure == "bad_key" else vendor.no_quota("openai")
    vendor.script(step)
    run_id, progress = runner.run(store, vendor_spec(vendor, limit=5))
    assert len(vendor.requests) == 1  # no retry, no further probe
    assert progress.done == 0
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "failed"
    message = store.scalar("SELECT message FROM runs WHERE run_id = ?", [run_id])
    assert "openai:gpt-4o-mini" in message and KEY not in message
    assert store.scalar(sql.COUNT["transcripts"]) == 0


def test_cancel_stops_a_background_run(store, vendor):
    vendor.script(*[Ok(f"answer {n}") for n in range(40)])
    run_id = runner.start_background(store, vendor_spec(vendor, limit=10))
    runner.cancel(store, run_id)
    runner._background[run_id].join(timeout=30)
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "cancelled"
    assert store.scalar(sql.COUNT["transcripts"]) < 40


def test_a_background_run_grades_its_answers(store, vendor):
    run_id = runner.start_background(store, vendor_spec(vendor, limit=2), grading.grade_run)
    runner._background[run_id].join(timeout=60)
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"
    graded = store.query("SELECT DISTINCT transcript_id FROM grades WHERE grader = 'alias'")
    assert len(graded) == store.scalar(sql.COUNT["transcripts"]) == 8
