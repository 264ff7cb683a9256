"""The runner's overhead, and the time to plan a big all-cached run.

    python bench/bench_runner.py --prompts 30 --repeats 3 --max-tokens 48
    python bench/bench_runner.py --plan-only data/bench/store-1m.duckdb

Overhead: the same prompts (the built-in facts set's items a run draws, neutral framing) answered
by the bundled model (a) through the runner: lib.run.runner.run with bundled:smollm2 at concurrency 1,
which sends each request to llama-cpp-python's server and writes each transcript to a fresh store;
(b) directly: llama_cpp.Llama in this process, create_chat_completion on the same messages as the
runner sends them. Both: 2 threads, temperature 0, the same max_tokens, fixed seed; model load,
server start and one warm-up request excluded. The two alternate, pass by pass, so that other load
on the machine falls on both alike; ratio = the median over pairs of direct time / runner time
(runner probes/s over direct probes/s).

Plan: lib.run.runner.plan of a run whose every probe-sample is in the store. The synthetic store holds
100,000 transcripts per model, a little under the 16 samples of the built-in sets (105,856
probe-samples); the bench first tops the first model up to them (generate.top_up), on a copy of the
store so that the other benches keep their counts.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import generate  # noqa: E402
from bench.timing import result, time_calls  # noqa: E402
from lib.probes import probesets
from lib.run import runner  # noqa: E402
from lib.run.providers import bundled  # noqa: E402
from lib.run.providers.openai_chat import instruction_prefill  # noqa: E402
from lib.store import Store  # noqa: E402

SET_ID = "builtin/facts-answer"
SEED = 1234
PLAN_SAMPLES = 16


def _spec(prompts: int, max_tokens: int) -> runner.RunSpec:
    return runner.RunSpec(
        "bundled:smollm2", (SET_ID,), ("neutral",), limit=prompts, max_tokens=max_tokens, concurrency=1
    )


def _fresh_store(folder: Path, n: int) -> Store:
    store = Store(folder / f"runner-{n}.duckdb")
    probe_set = probesets.get(SET_ID)
    store.ingest(probe_set, probe_set.load())
    return store


def overhead(prompts: int, repeats: int, max_tokens: int) -> list[dict[str, Any]]:
    """Runner and direct passes alternate, so that load from elsewhere on the machine falls on both
    alike; the ratio is the median over pairs of direct time / runner time."""
    from llama_cpp import Llama

    spec = _spec(prompts, max_tokens)
    llm = Llama(
        model_path=str(bundled.model_path()),
        n_ctx=bundled.N_CTX,
        n_threads=bundled.THREADS,
        n_threads_batch=bundled.THREADS,
        seed=SEED,
        verbose=False,
    )
    with tempfile.TemporaryDirectory() as folder:
        store = _fresh_store(Path(folder), 0)
        messages = [list(job.messages) for job in runner.plan(store, spec).jobs]
        counter = iter(range(1, 1000))
        tokens: dict[str, int] = {}

        def through_runner() -> None:
            fresh = _fresh_store(Path(folder), next(counter))
            runner.run(fresh, spec)
            tokens["runner"] = int(fresh.scalar("SELECT sum(completion_tokens) FROM transcripts"))

        def direct() -> None:
            total = 0
            for m in messages:
                reply = llm.create_chat_completion(
                    messages=instruction_prefill(m), temperature=0.0, max_tokens=max_tokens, seed=SEED
                )
                total += reply["usage"]["completion_tokens"]
            tokens["direct"] = total

        # warm-up, not timed: the server's start and model load, one request each way
        bundled.BundledChat(timeout=600).complete(messages[0], 0.0, max_tokens)
        llm.create_chat_completion(messages=instruction_prefill(messages[0]), temperature=0.0, max_tokens=8)
        runner_ms, direct_ms = [], []
        for _ in range(repeats):
            runner_ms += time_calls(through_runner, 1, warmup=0)
            direct_ms += time_calls(direct, 1, warmup=0)
        bundled.server().stop()

    rows = []
    for case, times, key in (
        ("through the runner", runner_ms, "runner"),
        ("llama-cpp-python in process", direct_ms, "direct"),
    ):
        row = result("runner overhead", case, times, prompts=prompts, max_tokens=max_tokens)
        row["probes_per_s"] = round(prompts / (row["median_ms"] / 1000), 2)
        row["completion_tokens"] = tokens[key]
        rows.append(row)
    ratio = statistics.median(d / r for d, r in zip(direct_ms, runner_ms, strict=True))
    rows[0] |= {"ratio": round(ratio, 3), "target_ratio": 0.9, "met": ratio >= 0.9}
    return rows


def plan_time(path: Path, repeats: int) -> list[dict[str, Any]]:
    """Time runner.plan of PLAN_SAMPLES samples of the built-in sets for the first model, all cached."""
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        copy = Path(folder) / "plan.duckdb"
        shutil.copy(path, copy)
        model = generate.top_up(copy, 0, PLAN_SAMPLES)
        store = Store(copy)
        spec = runner.RunSpec(model, generate.SETS, samples=PLAN_SAMPLES, max_tokens=256)
        first = runner.plan(store, spec)
        times = time_calls(lambda: runner.plan(store, spec), repeats, warmup=0)
        n = store.scalar("SELECT count(*) FROM transcripts")
    row = result("plan", f"{first.n_probes:,}-probe run, all cached", times, 5000.0)
    return [row | {"probes": first.n_probes, "to_send": first.n_to_send, "transcripts": n}]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--plan-only", type=Path, metavar="STORE")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = (
        plan_time(args.plan_only, args.repeats)
        if args.plan_only
        else overhead(args.prompts, args.repeats, args.max_tokens)
    )
    for row in rows:
        print(row)
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
