"""Shards: `run --shard K/N` takes the K-th of N slices of a run's plan. The N slices are disjoint and
together the unsharded plan, an "are you sure?" conversation stays in the slice of its first turn,
a restarted shard sends only what is missing, and N worker processes fill one store, each request
sent once."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from lib.paths import REPO
from lib.probes import probesets
from lib.run import runner
from lib.store import Store, sql
from tests import test_runner
from tests.fake_vendor import Ok
from tests.test_faults import FACTS, SlowServer, child_env, facts_store, per_probe

KEY = test_runner.KEY
vendor = test_runner.vendor  # the loopback vendor fixture, with the runner's key

AYS = "builtin/arithmetic-are-you-sure"
MODEL = "openai:gpt-4o-mini"


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "store.duckdb"))
    the_store = Store()
    for set_id in (FACTS, "builtin/wei-arithmetic", AYS):
        probe_set = probesets.get(set_id)
        the_store.ingest(probe_set, probe_set.load())
    return the_store


def sliced(spec: runner.RunSpec, k: int, n: int) -> runner.RunSpec:
    return runner.RunSpec(**{**vars(spec), "shard": (k, n)})


def probe_samples(the_plan: runner.Plan) -> list[tuple[str, int]]:
    return [(job.probe_id, job.sample) for job in the_plan.jobs]


@pytest.mark.parametrize("n", [1, 3, 7])
def test_the_shards_are_disjoint_and_together_the_unsharded_plan(store, n):
    spec = runner.RunSpec(MODEL, (FACTS, "builtin/wei-arithmetic", AYS), limit=12, samples=2, seed=3)
    whole = runner.plan(store, spec)
    assert whole.n_probes == len(whole.jobs) > 50
    shards = [runner.plan(store, sliced(spec, k, n)) for k in range(1, n + 1)]
    slices = [probe_samples(s) for s in shards]
    union = [pair for pieces in slices for pair in pieces]
    assert len(union) == len(set(union))  # disjoint: no probe-sample in two shards
    assert set(union) == set(probe_samples(whole))  # the same items as without shards
    assert sum(s.n_probes for s in shards) == whole.n_probes
    assert all(s.n_probes == s.n_to_send and s.n_cached == 0 for s in shards)
    # the jobs themselves (first messages, cache keys) are the unsharded run's
    by_key = {job.key: job for s in shards for job in s.jobs}
    assert by_key == {job.key: job for job in whole.jobs}
    if n > 1:
        assert all(0 < s.n_probes < whole.n_probes for s in shards)  # each gets its share
    # a slice depends on the cache key only: the same in another process (no Python hash())
    code = (
        "import json, sys; from lib.run import runner; from lib.store import Store; "
        "spec = runner.RunSpec(sys.argv[1], tuple(sys.argv[3:]), limit=12, samples=2, seed=3, "
        "shard=(1, int(sys.argv[2]))); "
        "print(json.dumps(sorted([j.probe_id, j.sample] for j in runner.plan(Store(), spec).jobs)))"
    )
    other = subprocess.run(
        [sys.executable, "-c", code, MODEL, str(n), *spec.set_ids],
        cwd=REPO,
        env=child_env(store.path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == sorted([p, s] for p, s in slices[0])


def test_a_shard_must_be_k_of_n():
    for bad in [(0, 3), (4, 3), (1, 0), (-1, 2)]:
        with pytest.raises(ValueError, match="1 <= K <= N"):
            runner.RunSpec(MODEL, (FACTS,), shard=bad)


def conversation(first: str) -> list[Ok]:
    """The replies of one "are you sure?" conversation of three turns: turn 2 names no letter."""
    return [Ok(first), Ok("I apologise for the confusion."), Ok("A)")]


def test_are_you_sure_turns_stay_in_their_shard_and_a_restarted_shard_sends_only_what_is_missing(
    store, vendor, monkeypatch
):
    monkeypatch.setattr(runner, "RETRY_DELAYS", (0.01,))
    spec = runner.RunSpec(MODEL, (AYS,), limit=9, base_url=vendor.openai_url, concurrency=1)
    # The key, and so the slice, depends on the server's URL (the fake's port): the largest shard,
    # at least three of the nine, is the one restarted.
    shards = sorted((sliced(spec, k, 3) for k in (1, 2, 3)), key=lambda s: -runner.plan(store, s).n_probes)
    sizes = [runner.plan(store, s).n_probes for s in shards]
    assert sum(sizes) == 9 and sizes[0] >= 3

    # The shard stops (a bad key: no retry) after one whole conversation and the first turn of the next.
    vendor.script(*conversation("B)"), Ok("C)"), vendor.bad_key("openai", KEY))
    run_id, _ = runner.run(store, shards[0])
    assert store.scalar(sql.RUN_STATUS, [run_id]) == "failed"
    assert json.loads(store.scalar("SELECT plan FROM runs WHERE run_id = ?", [run_id]))["shard"] == list(
        shards[0].shard
    )
    assert store.scalar(sql.COUNT["transcripts"]) == 4
    restarted = runner.plan(store, shards[0])
    assert (restarted.n_probes, restarted.n_cached) == (sizes[0], 1)
    assert [job.turn for job in restarted.jobs] == [2] + [1] * (sizes[0] - 2)  # the missing turns only
    # The other shards are untouched, and the restarted shard's jobs are none of theirs.
    others = {pair for s in shards[1:] for pair in probe_samples(runner.plan(store, s))}
    assert len(others) == sizes[1] + sizes[2]
    assert not others & set(probe_samples(restarted))

    before = len(vendor.requests)
    vendor.script(Ok("I apologise for the confusion."), Ok("A)"))
    vendor.script(*[r for _ in range(sizes[0] - 2) for r in conversation("B)")])
    _, progress = runner.run(store, shards[0])
    assert (progress.done, progress.failed, progress.cached) == (sizes[0] - 1, 0, 1)
    assert len(vendor.requests) - before == 2 + 3 * (sizes[0] - 2)

    for shard, size in zip(shards[1:], sizes[1:], strict=True):
        vendor.script(*[r for _ in range(size) for r in conversation("D)")])
        runner.run(store, shard)
    # Every conversation whole, each turn once, each turn after the first linked to its own
    # conversation: turns 2 and 3 went out with the shard of their turn 1.
    rows = store.query("SELECT probe_id, turn, count(*) FROM transcripts GROUP BY ALL")
    assert sorted((t, n) for _, t, n in rows) == [(1, 1)] * 9 + [(2, 1)] * 9 + [(3, 1)] * 9
    bodies = [json.dumps(r.body, sort_keys=True) for r in vendor.requests]
    assert len(bodies) == 27 + 1 and len(set(bodies)) == 27  # the request refused for its key, sent again
    broken = store.scalar(
        "SELECT count(*) FROM transcripts t JOIN transcripts p ON t.parent_id = p.transcript_id "
        "WHERE t.probe_id <> p.probe_id OR t.turn <> p.turn + 1"
    )
    assert broken == 0
    # The shards' transcripts are the unsharded run's: it has nothing left to send.
    whole = runner.plan(store, spec)
    assert (whole.n_probes, whole.n_to_send) == (9, 0)


def test_three_worker_processes_fill_one_store_each_request_sent_once(tmp_path):
    db = tmp_path / "s.duckdb"
    store = facts_store(db)
    with SlowServer(delay=0.05) as server:

        def command(k: int) -> list[str]:
            return [
                *(sys.executable, "-m", "lib", "run", "--model", "openai:fake", "--base-url", server.url),
                *("--set", FACTS, "--limit", "10", "--concurrency", "2", "--shard", f"{k}/3"),
            ]

        workers = [
            subprocess.Popen(
                command(k),
                cwd=REPO,
                env=child_env(db),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in (1, 2, 3)
        ]
        outputs = [worker.communicate(timeout=300) for worker in workers]
        for worker, (_, err) in zip(workers, outputs, strict=True):
            assert worker.returncode == 0, err
        # 10 items x 4 framings, split three ways
        said = [
            re.search(rf"^shard {k}/3: (\d+) probes: 0 cached", out, re.M)
            for k, (out, _) in zip((1, 2, 3), outputs, strict=True)
        ]
        assert all(said), outputs
        planned = [int(m[1]) for m in said]
        assert sum(planned) == 40 and min(planned) > 0
        store = Store(db)
        answered = per_probe(store)
        assert len(answered) == 40 and set(answered.values()) == {1}  # every probe answered once
        assert server.requests == 40  # and sent once: no two workers sent the same request
        runs = store.query("SELECT plan, n_done, status FROM runs")
        assert sorted((json.loads(p)["shard"], n, s) for p, n, s in runs) == [
            ([k, 3], planned[k - 1], "done") for k in (1, 2, 3)
        ]

        again = subprocess.run(
            command(2), cwd=REPO, env=child_env(db), capture_output=True, text=True, timeout=300
        )
        assert again.returncode == 0, again.stderr
        assert f"shard 2/3: {planned[1]} probes: {planned[1]} cached, 0 to send" in again.stdout
        assert server.requests == 40  # a rerun shard sends nothing


def test_a_malformed_shard_is_one_clear_error(tmp_path):
    facts_store(tmp_path / "s.duckdb")
    for bad, said in [
        ("2", "expected K/N"),
        ("a/b", "expected K/N"),
        ("0/3", "1 <= K <= N"),
        ("4/3", "1 <= K <= N"),
    ]:
        done = subprocess.run(
            [sys.executable, "-m", "lib", "run", "--model", "openai:fake", "--set", FACTS, "--shard", bad],
            cwd=REPO,
            env=child_env(tmp_path / "s.duckdb"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("error: ") and said in line and bad in line
    assert Store(tmp_path / "s.duckdb").scalar(sql.COUNT["runs"]) == 0  # nothing was started
