"""Batch runs (lib.run.batch_runs) against a loopback fake of OpenAI's Batch API and Anthropic's
Message Batches API (tests/fake_batch.py): results stored as direct transcripts, the "are you sure?"
turns in successive batches, failures retried or reported, a killed process resumed without sending
again. The fake stands in for the vendor's own host (keys.VENDOR_URLS), as in test_keys_bound.py."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pandas as pd
import pytest

from lib.probes import probesets
from lib.run import batch_runs, keys, prices, runner
from lib.run.batch_vendors import AnthropicBatches, Limits, OpenAIBatches, chunks
from lib.run.providers import make_provider
from lib.store import Store, sql, transcript_key
from tests.fake_batch import CANCELED, EXPIRED, FakeBatches
from tests.fake_vendor import Fail, FakeVendor, Ok

KEYS = {"OPENAI_API_KEY": "sk-openai-batch-test-0001", "ANTHROPIC_API_KEY": "sk-ant-batch-test-0002"}
MODELS = {"openai": "openai:gpt-4o-mini", "anthropic": "anthropic:claude-haiku-4-5"}
FACTS = "builtin/facts-answer"
SURE = "builtin/arithmetic-are-you-sure"


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "store.duckdb"))
    the_store = Store()
    for set_id in (FACTS, SURE):
        probe_set = probesets.get(set_id)
        the_store.ingest(probe_set, probe_set.load())
    return the_store


@pytest.fixture
def fake(monkeypatch, tmp_path):
    """The fake as both vendors' own hosts, their keys configured, polling without waiting."""
    with FakeBatches() as server:
        for name, value in KEYS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
        monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")
        monkeypatch.setitem(keys.VENDOR_URLS, "openai", server.openai_url)
        monkeypatch.setitem(keys.VENDOR_URLS, "anthropic", server.url)
        monkeypatch.setattr(batch_runs, "POLL_SECONDS", 0.0)
        monkeypatch.setattr(batch_runs, "TICK_SECONDS", 0.01)
        monkeypatch.setattr(runner, "RETRY_DELAYS", (0.01,))
        yield server


def batch_spec(vendor: str, set_id: str = FACTS, limit: int = 2, **kw) -> runner.RunSpec:
    return runner.RunSpec(MODELS[vendor], (set_id,), limit=limit, temperature=None, batch=True, **kw)


def cancel_once(store: Store):
    """An on_progress that asks to cancel the newest run, as the Run page's Cancel does."""

    def on_progress(_progress) -> None:
        runner.cancel(store, store.scalar("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 1"))

    return on_progress


def vendor_url(vendor: str, server) -> str:
    return server.openai_url if vendor == "openai" else server.url


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_batch_run_stores_transcripts_a_direct_run_finds_cached(vendor, store, fake):
    spec = batch_spec(vendor)
    the_plan = runner.plan(store, spec)
    assert the_plan.n_to_send == 8  # 2 facts items x 4 framings
    run_id, progress = runner.run(store, spec)
    assert (progress.done, progress.failed) == (8, 0)
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"
    [batch] = fake.submissions
    assert len(batch.requests) == 8
    # each request's custom_id is the cache key of the transcript it made, and its body is the one
    # the provider sends directly
    provider = make_provider(spec.model)
    rows = store.query("SELECT transcript_id, probe_id, messages, response, cost_usd, raw FROM transcripts")
    assert {r[0] for r in rows} == {line["custom_id"] for line in batch.requests}
    direct_bodies = {
        transcript_key(spec.model, None, json.loads(r[2]), spec.params, 0): provider.request(
            json.loads(r[2]), None, spec.max_tokens
        )
        for r in rows
    }
    for line in batch.requests:
        body = line["body"] if vendor == "openai" else line["params"]
        assert body == direct_bodies[line["custom_id"]]
    full = prices.cost(spec.model, 11, 7)
    for _, _, _, response, cost, raw in rows:
        assert response.endswith("Hello from the fake vendor.")
        assert cost == pytest.approx(full / 2)  # the batch price, half the standard one
        assert json.loads(raw)["usage"]
    assert store.query(sql.RUN_BATCHES, [run_id])[0][2] == "done"

    # A later direct run of the same plan finds every answer cached and sends nothing.
    direct = runner.RunSpec(spec.model, spec.set_ids, limit=2, temperature=None)
    assert runner.plan(store, direct).n_to_send == 0
    # and a batch run after it sends no batch
    runner.run(store, spec)
    assert len(fake.submissions) == 1


def test_a_batch_run_sends_only_what_a_direct_run_left(store, fake, monkeypatch):
    with FakeVendor() as direct_server:
        monkeypatch.setitem(keys.VENDOR_URLS, "openai", direct_server.openai_url)
        runner.run(store, runner.RunSpec(MODELS["openai"], (FACTS,), limit=1, temperature=None))
        assert len(direct_server.requests) == 4
    monkeypatch.setitem(keys.VENDOR_URLS, "openai", fake.openai_url)
    _, progress = runner.run(store, batch_spec("openai"))
    assert (progress.cached, progress.done) == (4, 4)
    [batch] = fake.submissions
    assert len(batch.requests) == 4
    assert store.query("SELECT count(*), count(DISTINCT transcript_id) FROM transcripts") == [(8, 8)]


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_are_you_sure_turns_go_in_three_successive_batches(vendor, store, fake):
    # the fake's reply names no letter, so each conversation takes all three turns
    run_id, progress = runner.run(store, batch_spec(vendor, SURE, limit=2))
    assert [len(b.requests) for b in fake.submissions] == [2, 2, 2]
    assert (progress.done, progress.failed) == (2, 0)
    turns = store.query("SELECT turn, count(*) FROM transcripts GROUP BY turn ORDER BY turn")
    assert turns == [(1, 2), (2, 2), (3, 2)]
    # each turn's parent is the turn before, and its messages carry the stored reply before it
    linked = store.scalar(
        """SELECT count(*) FROM transcripts c JOIN transcripts p ON c.parent_id = p.transcript_id
           WHERE c.turn = p.turn + 1 AND position(p.response IN c.messages::VARCHAR) > 0"""
    )
    assert linked == 4
    assert [s for (s,) in store.query("SELECT status FROM batches ORDER BY submitted_at")] == ["done"] * 3
    assert runner.plan(store, batch_spec(vendor, SURE, limit=2)).n_to_send == 0


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_failed_expired_and_cancelled_requests_are_retried_or_reported_never_lost(vendor, store, fake):
    """Of 8 requests: one bad request (reported at once), one server error every time (reported after
    MAX_ATTEMPTS sendings), one expired and one cancelled the first time (answered in a later batch)."""
    seen: dict[str, int] = {}
    order: list[str] = []

    def answer(_vendor, custom_id, body):
        seen[custom_id] = seen.get(custom_id, 0) + 1
        if custom_id not in order:
            order.append(custom_id)
        which = order.index(custom_id)
        if which == 0:
            return _bad_request(vendor)
        if which == 1:
            return FakeVendor.server_error(vendor)
        if which == 2 and seen[custom_id] == 1:
            return EXPIRED
        if which == 3 and seen[custom_id] == 1:
            return CANCELED
        return Ok()

    fake.answer = answer
    run_id, progress = runner.run(store, batch_spec(vendor))
    assert (progress.done, progress.failed) == (6, 2)
    assert seen[order[0]] == 1 and seen[order[1]] == batch_runs.MAX_ATTEMPTS
    assert seen[order[2]] == seen[order[3]] == 2
    stored = {t for (t,) in store.query("SELECT transcript_id FROM transcripts")}
    assert stored == set(order[2:])
    errors = store.query("SELECT transcript_id, probe_id, kind, message FROM errors ORDER BY kind")
    assert [(e[0], e[2]) for e in errors] == [(order[0], "bad_request"), (order[1], "server")]
    assert all(e[1] for e in errors)  # reported per probe
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"
    assert "2 probe(s) failed" in store.scalar("SELECT message FROM runs WHERE run_id = ?", [run_id])
    statuses = [s for (s,) in store.query("SELECT status FROM batches ORDER BY submitted_at")]
    assert statuses[0] == "failed" and len(statuses) == batch_runs.MAX_ATTEMPTS


def _bad_request(vendor: str) -> Fail:
    if vendor == "openai":
        body = {"error": {"message": "bad 'messages'", "type": "invalid_request_error", "code": None}}
    else:
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad 'messages'"}}
    return Fail(400, body)


def test_a_batch_failed_as_a_whole_reports_every_probe(store, fake):
    fake.fail_batches = ("invalid_request", "line 1: the body is not valid")
    run_id, progress = runner.run(store, batch_spec("openai"))
    assert (progress.done, progress.failed) == (0, 8)
    assert store.scalar("SELECT count(*) FROM transcripts") == 0
    assert store.scalar("SELECT count(DISTINCT probe_id) FROM errors WHERE run_id = ?", [run_id]) == 8
    [(status, message)] = store.query("SELECT status, message FROM batches")
    assert status == "failed" and "the body is not valid" in message


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_4xx_on_create_stops_the_run_with_the_vendors_message(vendor, store, fake):
    fake.refuse_create = FakeVendor.bad_key(
        vendor, KEYS["OPENAI_API_KEY" if vendor == "openai" else "ANTHROPIC_API_KEY"]
    )
    run_id, _ = runner.run(store, batch_spec(vendor))
    [(status, message)] = store.query("SELECT status, message FROM runs")
    assert status == "failed" and "API key" in message and "batch-test" not in message
    assert store.scalar("SELECT count(*) FROM batches") == 0


@pytest.mark.parametrize(
    ("model", "kw"),
    [
        ("bundled:smollm2", {}),
        ("openai:llama3", {"base_url": "http://127.0.0.1:8000/v1"}),
    ],
)
def test_batch_is_refused_for_the_bundled_model_and_compatible_servers(model, kw):
    with pytest.raises(ValueError, match="batches go only to OpenAI's and Anthropic's own APIs"):
        runner.RunSpec(model, (FACTS,), batch=True, **kw)


def test_the_batch_estimate_is_half_the_direct_one(store):
    direct = runner.plan(store, runner.RunSpec(MODELS["openai"], (FACTS,), limit=2))
    batch = runner.plan(store, runner.RunSpec(MODELS["openai"], (FACTS,), limit=2, batch=True))
    assert batch.usd == pytest.approx(direct.usd / 2)


CHILD = """
import sys
from lib.run import batch_runs, keys
keys.VENDOR_URLS["openai"] = sys.argv[1]
batch_runs.POLL_SECONDS, batch_runs.TICK_SECONDS = 0.0, 0.05
from lib import cli
sys.exit(cli.main(["run", "--batch", "--model", "openai:gpt-4o-mini", "--set", sys.argv[2],
                   "--limit", "2", "--temperature", "0"]))
"""


def test_a_killed_process_is_resumed_without_submitting_again(store, fake, tmp_path):
    """A real process submits a batch and is killed (SIGKILL) while it polls; a second process
    polls and collects that batch, and submits nothing."""
    fake.hold = True
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    first = subprocess.Popen(
        [sys.executable, "-c", CHILD, fake.openai_url, FACTS],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            polled = [p for p in fake.paths if p[0] == "GET" and p[1].startswith("/v1/batches/")]
            if polled:
                break
            assert first.poll() is None, first.communicate()
            time.sleep(0.05)
        assert polled, "the first process never polled its batch"
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    assert len(fake.submissions) == 1
    assert store.query("SELECT status FROM batches") in ([("submitted",)], [("in_progress",)])

    fake.hold = False
    second = subprocess.run(
        [sys.executable, "-c", CHILD, fake.openai_url, FACTS],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 0, second.stderr
    assert len(fake.submissions) == 1  # collected, not sent again
    assert store.query("SELECT count(*), count(DISTINCT transcript_id) FROM transcripts") == [(8, 8)]
    assert "1 done" in second.stdout
    runs = store.query("SELECT status FROM runs ORDER BY created_at")
    assert runs[-1] == ("done",)
    # the batch now belongs to the run that collected it
    assert (
        store.scalar("SELECT run_id FROM batches")
        == store.query("SELECT run_id FROM runs ORDER BY created_at")[-1][0]
    )


def test_the_run_page_sends_a_batch_at_half_price_and_shows_its_batches(store, fake, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from lib.paths import REPO

    def page(**params) -> AppTest:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
        at.switch_page("pages/run.py")
        for name, value in params.items():
            at.query_params[name] = value
        return at.run()

    at = page(provider="bundled", sets=FACTS, limit="2")
    assert at.toggle(key="batch").disabled  # no batch API for the bundled model
    at = page(provider="openai", sets=FACTS, limit="2")
    assert not at.exception and not at.toggle(key="batch").disabled
    direct_cost = {m.label: m.value for m in at.metric}["Cost, at most"]
    at.toggle(key="batch").set_value(True).run()
    batch_cost = {m.label: m.value for m in at.metric}["Cost, at most"]
    # shown to four decimals: half, to the last one
    assert float(batch_cost.lstrip("$")) == pytest.approx(float(direct_cost.lstrip("$")) / 2, abs=1e-4)
    assert float(batch_cost.lstrip("$")) < float(direct_cost.lstrip("$"))
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    run_id = at.query_params["run"]
    run_id = run_id[0] if isinstance(run_id, list) else run_id
    runner._background[run_id].join(timeout=120)
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"
    assert len(fake.submissions) == 1 and store.scalar("SELECT count(*) FROM transcripts") == 8
    at.run()
    assert not at.exception, at.exception
    captions = [str(c.value) for c in at.caption]
    assert any("batches: 0 submitted, 0 in progress, 1 done, 0 failed" in c for c in captions), captions
    shown = [df.value for df in at.dataframe if "batch_id" in df.value.columns]
    assert shown and shown[0]["batch_id"].tolist() == [fake.submissions[0].id]


# -- whose batches, cancelling, resuming -----------------------------------------------------------


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_cancelled_batch_run_leaves_its_batch_out_and_the_next_run_collects_it(vendor, store, fake):
    fake.hold = True
    spec = batch_spec(vendor)
    run_id, progress = runner.run(store, spec, on_progress=cancel_once(store))
    [(status, message)] = store.query("SELECT status, message FROM runs")
    assert status == "cancelled" and "run it again to collect them" in message
    assert progress.done == 0 and len(fake.submissions) == 1
    assert store.query("SELECT run_id, status FROM batches") == [(run_id, "in_progress")]
    # What is out is paid for: the next run's estimate leaves it out, though it is still to collect.
    resumed = runner.plan(store, spec)
    assert resumed.n_to_send == 8 and resumed.usd == 0.0

    fake.hold = False
    again, progress = runner.run(store, spec)
    assert (progress.done, progress.failed) == (8, 0) and len(fake.submissions) == 1
    assert store.query("SELECT run_id, status FROM batches") == [(again, "done")]


def test_a_run_takes_over_only_the_batches_that_hold_its_requests(store, fake):
    """A facts run cancelled with its batch out; a 1-probe arithmetic run neither polls nor adopts
    that batch; a facts run of half that plan collects it: all 8 answers stored, its 4 counted."""
    fake.hold = True
    facts_run, _ = runner.run(store, batch_spec("openai", FACTS, limit=2), on_progress=cancel_once(store))
    [facts_batch] = fake.submissions
    fake.hold = False
    seen = len(fake.paths)
    run_id, progress = runner.run(store, batch_spec("openai", SURE, limit=1))
    assert (progress.done, progress.failed) == (1, 0)
    assert store.query("SELECT n_done, status FROM runs WHERE run_id = ?", [run_id]) == [(1, "done")]
    assert not any(facts_batch.id in path for _, path in fake.paths[seen:])
    held = store.query("SELECT run_id, status FROM batches WHERE batch_id = ?", [facts_batch.id])
    assert held == [(facts_run, "in_progress")]

    half, progress = runner.run(store, batch_spec("openai", FACTS, limit=1))
    assert (progress.done, progress.failed) == (4, 0)
    assert store.query("SELECT n_done FROM runs WHERE run_id = ?", [half]) == [(4,)]
    assert len(fake.submitted("openai")) == 1 + 3  # the facts batch, and the arithmetic turns
    facts = {line["custom_id"] for line in facts_batch.requests}
    stored = {t for (t,) in store.query("SELECT transcript_id FROM transcripts")}
    assert facts <= stored  # the other 4 were paid for: stored, counted by no run
    assert store.query("SELECT run_id, status FROM batches WHERE batch_id = ?", [facts_batch.id]) == [
        (half, "done")
    ]
    assert runner.plan(store, batch_spec("openai", FACTS, limit=2)).n_to_send == 0


def test_a_batch_another_run_collected_first_counts_there_only(store, fake):
    """While one run reads a batch's results, another run collects it: the first stores nothing
    twice and counts nothing of it."""
    spec = batch_spec("openai")
    other: dict[str, tuple] = {}

    def collect_first(_batch) -> None:
        other["run"] = runner.run(store, spec)

    fake.before_results = collect_first
    run_id, progress = runner.run(store, spec)
    other_id, other_progress = other["run"]
    assert (other_progress.done, progress.done, progress.cost_usd) == (8, 0, 0.0)
    assert store.query("SELECT count(*), count(DISTINCT transcript_id) FROM transcripts") == [(8, 8)]
    n_done = dict(store.query("SELECT run_id, n_done FROM runs"))
    assert n_done == {run_id: 0, other_id: 8}
    assert len(fake.submissions) == 1


# -- the vendor's limits and faults ---------------------------------------------------------------


def test_chunks_hold_the_vendors_limits_exactly():
    assert OpenAIBatches.limits == Limits(50_000, 200_000_000)
    assert AnthropicBatches.limits == Limits(100_000, 256_000_000)
    line = {"custom_id": "a" * 64, "params": {"messages": [{"role": "user", "content": "é"}]}}
    size = len(json.dumps(line).encode()) + 1  # as sent: a JSON line and its newline
    sizes = lambda n, limits: [len(c) for c in chunks([line] * n, limits)]  # noqa: E731
    assert sizes(6, Limits(3, 10**9)) == [3, 3]  # at the request limit: full batches
    assert sizes(7, Limits(3, 10**9)) == [3, 3, 1]
    assert sizes(4, Limits(100, 2 * size)) == [2, 2]  # at the byte limit, to the byte
    assert sizes(3, Limits(100, 2 * size - 1)) == [1, 1, 1]
    [chunk] = list(chunks([line] * 2, Limits(2, 2 * size)))
    assert len("".join(json.dumps(x) + "\n" for x in chunk).encode()) == 2 * size


@pytest.mark.parametrize("limited", [False, True])
def test_a_batch_refused_for_a_full_queue_goes_again_as_earlier_ones_finish(
    limited, store, fake, monkeypatch
):
    """At most MAX_BATCHES_OUT batches are out at once, the rest sent as earlier ones end. OpenAI's
    token_limit_exceeded fails a whole batch: its requests go again, once a batch still out has
    ended (from then on one at a time), and none is reported failed."""
    monkeypatch.setattr(batch_runs, "MAX_BATCHES_OUT", 2)
    monkeypatch.setattr(OpenAIBatches, "limits", Limits(2, 10**9))  # 8 requests: 4 batches
    fake.steps = ["in_progress", "in_progress"]
    if limited:
        fake.fail_batches = (
            "token_limit_exceeded",
            "Enqueued token limit reached for gpt-4o-mini in organization org-x. Limit: 2,000,000 "
            "enqueued tokens. Please try again once some in_progress batches have been completed.",
        )
    run_id, progress = runner.run(store, batch_spec("openai"))
    assert (progress.done, progress.failed) == (8, 0)
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"
    assert fake.max_open == (1 if limited else 2)
    assert len(fake.submissions) == 4 + limited  # the refused batch, sent again
    statuses = [s for (s,) in store.query("SELECT status FROM batches ORDER BY submitted_at, batch_id")]
    assert statuses.count("failed") == limited and statuses.count("done") == 4
    assert store.scalar("SELECT count(*) FROM errors") == 0


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_create_whose_answer_is_lost_is_not_paid_twice(vendor, store, fake):
    """The vendor makes the batch but answers 502. OpenAI's is found by its metadata and taken;
    Anthropic's cannot be found, so the run stops, saying so, and sends it no second time."""
    fake.lose_create = 502
    run_id, progress = runner.run(store, batch_spec(vendor))
    [made] = fake.submissions
    if vendor == "openai":
        assert (progress.done, progress.failed) == (8, 0)
        assert store.query("SELECT batch_id, status FROM batches") == [(made.id, "done")]
        ids = "\n".join(line["custom_id"] for line in made.requests)
        assert made.metadata["sycoscope_requests"] == hashlib.sha256(ids.encode()).hexdigest()
        assert ("GET", "/v1/batches?limit=100") in fake.paths
    else:
        [(status, message)] = store.query("SELECT status, message FROM runs")
        assert status == "failed" and "may have made the batch of 8 request(s)" in message
        assert store.scalar("SELECT count(*) FROM batches") == 0


def test_anthropic_results_are_read_only_from_the_checked_url_on_its_host(store, fake):
    """The results_url a second retrieve would name is on another port: nothing goes there, the key
    least of all; a batch whose results are only there is given up, its requests error rows."""
    key = KEYS["ANTHROPIC_API_KEY"]
    with FakeBatches() as elsewhere:

        def off_host(batch) -> str:
            return f"{elsewhere.url}/v1/messages/batches/{batch.id}/results"

        # the state poll and the results' retrieve name the vendor's URL; any later one, another host
        fake.results_url_of = lambda batch: off_host(batch) if batch.polls >= 3 else None
        _, progress = runner.run(store, batch_spec("anthropic"))
        assert (progress.done, progress.failed) == (8, 0)
        assert any(key in json.dumps(h) for h in fake.headers)  # headers are recorded
        assert elsewhere.paths == [] and not any(key in json.dumps(h) for h in elsewhere.headers)

        fake.results_url_of = off_host
        run_id, progress = runner.run(store, batch_spec("anthropic", SURE, limit=1))
        assert elsewhere.paths == []
        assert progress.failed == 1
        [(status, message)] = store.query("SELECT status, message FROM batches WHERE run_id = ?", [run_id])
        assert status == "failed" and "off its API host" in message


def test_a_batch_whose_results_are_archived_is_given_up_and_blocks_no_later_run(store, fake):
    fake.archived = True
    run_id, progress = runner.run(store, batch_spec("anthropic"))
    assert (progress.done, progress.failed) == (0, 8)
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "done"
    [(batch_id, status)] = store.query("SELECT batch_id, status FROM batches")
    assert status == "failed"
    errors = store.query("SELECT kind, message FROM errors")
    assert len(errors) == 8 and {kind for kind, _ in errors} == {"server"}  # retryable
    assert all(batch_id in message and "no results_url" in message for _, message in errors)

    fake.archived = False
    _, progress = runner.run(store, batch_spec("anthropic"))
    assert (progress.done, progress.failed) == (8, 0) and len(fake.submissions) == 2


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
@pytest.mark.parametrize("named", [True, False])
def test_a_result_line_that_cannot_be_read_fails_only_its_request(vendor, named, store, fake):
    """One request's result line is cut short (it still names its custom_id) or is garbage: that
    request, and only it, is tried again and then reported, naming the batch and the line."""
    victim: list[str] = []

    def spoil(_vendor, custom_id, line):
        victim[:] = victim or [custom_id]
        if custom_id != victim[0]:
            return line
        return line[: line.index(custom_id) + 70] if named else "<html>502 Bad Gateway</html>"

    fake.spoil = spoil
    _, progress = runner.run(store, batch_spec(vendor))
    assert (progress.done, progress.failed) == (7, 1)
    [(transcript_id, kind, message)] = store.query("SELECT transcript_id, kind, message FROM errors")
    assert transcript_id == victim[0] and kind == "server"
    if named:
        assert re.search(r"batch \w+, result line \d+ cannot be read", message), message
    else:
        assert re.search(r"batch \w+, no readable result \(result line\(s\) \d+ cannot be read\)", message)
    assert len(fake.submissions) == batch_runs.MAX_ATTEMPTS


@pytest.mark.parametrize(
    ("vendor", "steps", "first"),
    [
        ("openai", ["validating", "in_progress", "finalizing"], Ok()),
        ("openai", ["in_progress", "cancelling"], CANCELED),
        ("anthropic", ["in_progress", "canceling"], CANCELED),
    ],
)
def test_a_batch_passes_through_the_vendors_states(vendor, steps, first, store, fake):
    """Each state before the end is recorded as polled; a batch cancelled on the vendor's side has
    its requests sent again; request_counts say how each request ended."""
    fake.steps = steps
    sent: set[str] = set()

    def answer(_vendor, custom_id, _body):
        fresh = custom_id not in sent
        sent.add(custom_id)
        return first if fresh else Ok()

    fake.answer = answer
    seen: list[str] = []

    def on_progress(_progress) -> None:
        seen.extend(s for (s,) in store.query("SELECT vendor_status FROM batches") if s not in seen)

    _, progress = runner.run(store, batch_spec(vendor), on_progress=on_progress)
    assert (progress.done, progress.failed) == (8, 0)
    assert [s for s in steps if s != "in_progress"] == [s for s in seen if s in steps and s != "in_progress"]
    path = (
        f"/batches/{fake.submissions[0].id}"
        if vendor == "openai"
        else f"/v1/messages/batches/{fake.submissions[0].id}"
    )
    with urllib.request.urlopen(vendor_url(vendor, fake) + path) as reply:
        counts = json.load(reply)["request_counts"]
    if vendor == "openai":
        assert counts == (
            {"total": 8, "completed": 8, "failed": 0}
            if first == Ok()
            else {"total": 8, "completed": 0, "failed": 8}
        )
    else:
        assert counts == {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 8, "expired": 0}
    assert len(fake.submissions) == (1 if first == Ok() else 2)


@pytest.mark.parametrize(
    ("request_", "refused"),
    [
        (
            {
                "custom_id": "a/b",
                "params": {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            },
            "custom_id",
        ),
        (
            {
                "custom_id": "a" * 65,
                "params": {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
            },
            "custom_id",
        ),
        (
            {
                "custom_id": "ok",
                "params": {
                    "model": "m",
                    "max_tokens": 8,
                    "messages": [{"role": "user", "content": "x"}],
                    "extra_body": {},
                },
            },
            "extra_body",
        ),
        (
            {"custom_id": "ok", "params": {"model": "m", "messages": [{"role": "user", "content": "x"}]}},
            "max_tokens",
        ),
        (
            {
                "custom_id": "ok",
                "params": {"model": "m", "max_tokens": 8, "messages": [{"role": "system", "content": "x"}]},
            },
            "messages",
        ),
    ],
)
def test_the_fake_refuses_what_anthropic_refuses(request_, refused, fake):
    """The fake's checks are real: a request Anthropic's API refuses is refused here too."""
    data = json.dumps({"requests": [request_]}).encode()
    post = urllib.request.Request(f"{fake.url}/v1/messages/batches", data=data, method="POST")
    with pytest.raises(urllib.error.HTTPError) as refusal:
        urllib.request.urlopen(post)
    assert refusal.value.code == 400 and refused in refusal.value.read().decode()
    assert fake.submissions == []


@pytest.mark.parametrize("vendor", ["openai", "anthropic"])
def test_a_batch_transcript_is_the_direct_one_column_by_column(vendor, tmp_path, fake, monkeypatch):
    """The same plan run directly (one store) and as a batch (another): the same rows, but for the
    run, the time, the latency (a batch has none), the raw answer, and the price (half)."""
    stores = {}
    for how in ("direct", "batch"):
        stores[how] = Store(tmp_path / f"{how}.duckdb")
        probe_set = probesets.get(FACTS)
        stores[how].ingest(probe_set, probe_set.load())
    with FakeVendor() as direct_server:
        monkeypatch.setitem(keys.VENDOR_URLS, vendor, vendor_url(vendor, direct_server))
        runner.run(stores["direct"], runner.RunSpec(MODELS[vendor], (FACTS,), limit=2, temperature=None))
    monkeypatch.setitem(keys.VENDOR_URLS, vendor, vendor_url(vendor, fake))
    runner.run(stores["batch"], batch_spec(vendor))
    every = stores["direct"].frame("SELECT * FROM transcripts LIMIT 0").columns
    left_out = {"run_id", "latency_ms", "created_at", "raw", "cost_usd"}
    columns = ", ".join(c for c in every if c not in left_out)
    frames = {
        how: s.frame(f"SELECT {columns} FROM transcripts ORDER BY transcript_id") for how, s in stores.items()
    }
    assert len(frames["direct"]) == 8
    pd.testing.assert_frame_equal(frames["direct"], frames["batch"])
    costs = {
        how: s.query("SELECT cost_usd, latency_ms FROM transcripts ORDER BY transcript_id")
        for how, s in stores.items()
    }
    for (direct_cost, direct_latency), (batch_cost, batch_latency) in zip(
        costs["direct"], costs["batch"], strict=True
    ):
        assert batch_cost == pytest.approx(direct_cost / 2)
        assert direct_latency is not None and batch_latency is None


def test_the_batches_shown_while_the_store_is_busy(store):
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.writing():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        assert batch_runs.shown(store.with_timeout(0.2), "no-run") == ("batches: the store is busy", None)
    finally:
        release.set()
        holder.join()
    line, batches = batch_runs.shown(store, "no-run")
    assert line == "batches: 0 submitted, 0 in progress, 0 done, 0 failed" and batches.empty
