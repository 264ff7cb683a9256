"""How long the first-run seed and the background fill take with the bundled model.

    python bench/bench_fill.py                        # the seed, then 3 batches of 2 more items per set
    python bench/bench_fill.py --batches 5 --items 3
    python bench/bench_fill.py --skip-seed --batches 2 --items 1   # quick, on a busy machine
    python bench/bench_fill.py --whole    # the seed, then the fill itself, every step timed (~25 min)

On a fresh store with the seed's sets (lib.view.firstrun): (a) the seed itself, timed whole; (b) the
fill's work in small batches: each batch is a fill step (lib.view.fill: the seed's settings, a limit
`--items` higher than the one before), timed, and divided by the probes it sent (a probe: one request,
or one "are you sure?" conversation of two or more). The median seconds per probe over the batches,
times the probes the fill sends from the seed to fill.TARGET items per framing (runner.plan on a store
holding only the seed's answers), estimates the fill. The server's start and one warm-up request are
excluded.

With --whole it times the real thing instead: the seed, then each step the fill plans (fill.planned,
the Overview's sets first), one after the other, with the minutes since the fill began.

A busy machine makes every number larger. So the bundled server's own CPU seconds per probe are read
too (/proc/<pid>/stat), and divided by its threads (bundled.THREADS) they give what a probe takes on
an idle machine with that many free cores; the load average is reported beside them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import machine, save  # noqa: E402
from lib.run import runner  # noqa: E402
from lib.run.providers import bundled  # noqa: E402
from lib.store import Store  # noqa: E402
from lib.view import fill, firstrun  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14 and 15)


def timed_run(store: Store, spec: runner.RunSpec, pid: int) -> dict[str, Any]:
    """One run, timed: wall and server CPU seconds, the probes it sent and the requests they took."""
    the_plan = runner.plan(store, spec)
    before = store.scalar("SELECT count(*) FROM transcripts")
    cpu, start = cpu_seconds(pid), time.perf_counter()
    runner.run(store, spec)
    wall, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
    requests = store.scalar("SELECT count(*) FROM transcripts") - before
    return {
        "limit": spec.limit,
        "probes": the_plan.n_to_send,
        "requests": requests,
        "wall_s": wall,
        "cpu_s": cpu,
    }


def fill_probes(folder: Path) -> tuple[int, int]:
    """The probes the seed sends, and those the fill sends after it up to fill.TARGET, planned on a
    store of the seed's sets with no answers (the fill's steps only add items: their sum is the plan
    at the target less the seed's)."""
    store = Store(folder / "planned.duckdb")
    firstrun.ingest_builtins(store)
    seed = runner.plan(store, firstrun.SEED).n_to_send
    return seed, runner.plan(store, replace(firstrun.SEED, limit=fill.TARGET)).n_to_send - seed


def whole(store: Store, pid: int) -> int:
    """The seed, then the fill's steps as lib.view.fill runs them, each timed; printed and saved."""
    seed = timed_run(store, firstrun.SEED, pid)
    print(f"seed: {seed['probes']} probes, {seed['requests']} requests in {seed['wall_s']:.0f} s")
    steps, began = [], time.perf_counter()
    for sets, limit in fill.planned(store):
        step = timed_run(store, replace(firstrun.SEED, set_ids=sets, limit=limit, kind=runner.GIVES_WAY), pid)
        step |= {"sets": sets, "minutes_since_fill_began": round((time.perf_counter() - began) / 60, 1)}
        steps.append(step)
        print(
            f"{', '.join(sets)} to {limit}: {step['probes']} probes, {step['requests']} requests in "
            f"{step['wall_s']:.0f} s; {step['minutes_since_fill_began']} min since the fill began"
        )
    save("fill-whole", [{"bench": "fill-whole", "seed": seed, "steps": steps, "machine": machine(),
                         "load_average_after": round(os.getloadavg()[0], 1)}])  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=3, help="fill batches timed (default 3)")
    parser.add_argument("--items", type=int, default=2, help="items per set each batch adds (default 2)")
    parser.add_argument(
        "--skip-seed",
        action="store_true",
        help="time no seed (on a busy machine it takes long): its time is estimated from the batches",
    )
    parser.add_argument("--whole", action="store_true", help="time the seed and the whole fill, step by step")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    if args.whole:
        with tempfile.TemporaryDirectory() as folder:
            store = Store(Path(folder) / "fill.duckdb")
            firstrun.ingest_builtins(store)
            print(f"load average {load_before:.1f} at the start")
            return whole(store, bundled.server().pid)
    with tempfile.TemporaryDirectory() as folder:
        seed_probes, fill_to_send = fill_probes(Path(folder))
        store = Store(Path(folder) / "fill.duckdb")
        firstrun.ingest_builtins(store)
        server = bundled.server()
        pid = server.pid
        # warm-up: one request, kept out of every number
        runner.run(store, replace(firstrun.SEED, set_ids=firstrun.SEED_SETS[:1], limit=1, max_tokens=8))
        seed = None if args.skip_seed else timed_run(store, firstrun.SEED, pid)
        batches = []
        for n in range(1, args.batches + 1):
            limit = (0 if args.skip_seed else firstrun.SEED.limit) + n * args.items
            batches.append(timed_run(store, replace(firstrun.SEED, limit=limit, kind=runner.GIVES_WAY), pid))
    per_probe = statistics.median(b["wall_s"] / b["probes"] for b in batches if b["probes"])
    cpu_per_probe = statistics.median(b["cpu_s"] / b["probes"] for b in batches if b["probes"])
    idle_per_probe = cpu_per_probe / bundled.THREADS
    row = {
        "bench": "fill",
        "seed_probes": seed_probes,
        # timed, or estimated from the batches (--skip-seed)
        "seed_s": round(seed["wall_s"] if seed else seed_probes * per_probe, 1),
        "seed_idle_s": round(seed["cpu_s"] / bundled.THREADS if seed else seed_probes * idle_per_probe, 1),
        "seed_timed": seed is not None,
        "median_s_per_probe": round(per_probe, 2),
        "idle_s_per_probe": round(idle_per_probe, 2),
        "fill_probes": fill_to_send,
        "fill_min": round(fill_to_send * per_probe / 60, 1),
        "fill_idle_min": round(fill_to_send * idle_per_probe / 60, 1),
        "batches": batches,
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "machine": machine(),
    }
    save("fill", [row])
    print(
        f"seed: {seed_probes} probes in {row['seed_s']} s{'' if seed else ' (estimated)'} "
        f"({row['seed_idle_s']} s of the server's CPU per core); fill: {fill_to_send} probes more to "
        f"{fill.TARGET} items per framing"
    )
    print(
        f"median {row['median_s_per_probe']} s a probe here (load average {row['load_average']}): the fill "
        f"takes about {row['fill_min']} min; on {bundled.THREADS} idle cores {row['idle_s_per_probe']} s a "
        f"probe, about {row['fill_idle_min']} min"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
