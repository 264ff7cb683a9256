"""The shared store on DuckLake against a DuckDB file: runner throughput, dashboard queries, data files.

    python bench/bench_ducklake.py data/bench/store-1m.duckdb --size 1M
    python bench/run_all.py --only ducklake --sizes 100k      # a quicker run on the 100k store

Both parts run against a real PostgreSQL started for the bench (tests/postgres.py: a cluster in a
temporary folder on a loopback port, fsync off) as the DuckLake catalog; the lake's data files go in
a temporary folder beside the file store, on the same disk.

Throughput: one plan (the built-in facts set, `items` items x 4 framings x `samples` samples, model
openai:bench) sent to a loopback OpenAI-compatible server that answers every request after a fixed
delay (tests.test_faults.SlowServer, reached by --base-url: no key is involved). (a) One process,
`python -m lib run` at the default concurrency 4, writing into a new DuckDB file; (b) four processes,
the same command with `--shard K/4` each, at once, writing into a new DuckLake store. Transcripts per
second two ways: over the wall time from the first process started to the last one ended (planning,
the run, the grading that `run` does after it, and Python's start included) and over the runs' own
span in the store (first run created to last run updated: sending and writing only). Afterwards both
stores must hold exactly the plan's transcripts, each once, and the server must have been asked each
request once per store: lost, duplicated and extra are counted, not assumed. Then the lake's data
files are counted, and again after compaction (LakeStore.compact).

Queries: the synthetic store (bench/generate.py) copied into a new DuckLake store (copy_store) and
compacted; then the page queries bench_queries.py times, on the file and on the lake, alternately
call by call so that other load on the machine falls on both alike. Ratio = lake p95 / file p95.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import bench_queries  # noqa: E402
from bench.timing import p95, result, save, time_calls  # noqa: E402
from lib.measure import tablecache  # noqa: E402
from lib.paths import REPO  # noqa: E402
from lib.run import runner  # noqa: E402
from lib.store import Store  # noqa: E402
from lib.store.lake import LakeStore  # noqa: E402
from lib.store.transfer import copy_store  # noqa: E402
from tests import postgres  # noqa: E402
from tests.test_faults import FACTS, SlowServer, facts_store  # noqa: E402

MODEL = "openai:bench"
WORKERS = 4
ITEMS = 60  # of the facts set, x 4 framings: about 30 s for one process into a file here
GOAL_THROUGHPUT = 3.0  # lake (4 processes) / file (1 process), at least
GOAL_QUERIES = 2.0  # lake p95 / file p95, at most


@contextmanager
def lake_target(pg: postgres.Postgres, data: Path) -> Iterator[str]:
    """A new DuckLake target in its own database of `pg`, its data in `data`; PGPASSWORD and
    SYCOSCOPE_DATA_PATH set in this process (runner processes inherit them) for the block."""
    target = "ducklake:postgres:" + pg.dsn(pg.createdb(f"bench_{uuid.uuid4().hex[:10]}"))
    saved = {k: os.environ.get(k) for k in ("PGPASSWORD", "SYCOSCOPE_DATA_PATH")}
    os.environ |= {"PGPASSWORD": pg.password, "SYCOSCOPE_DATA_PATH": f"{data}/"}
    try:
        yield target
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


def _run_processes(target: str, url: str, items: int, samples: int, shards: int | None) -> float:
    """`python -m lib run` into `target`, one process or `shards` sharded ones at once; the wall time
    in seconds from the first start to the last end. A process that fails stops the bench."""
    command = [
        *(sys.executable, "-m", "lib", "run", "--model", MODEL, "--base-url", url, "--set", FACTS),
        *("--limit", str(items), "--samples", str(samples)),
    ]
    slices = [["--shard", f"{k}/{shards}"] for k in range(1, shards + 1)] if shards else [[]]
    env = {**os.environ, "SYCOSCOPE_DB": target}
    start = time.perf_counter()
    workers = [
        subprocess.Popen(
            [*command, *extra], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for extra in slices
    ]
    outputs = [w.communicate(timeout=3600) for w in workers]
    wall = time.perf_counter() - start
    for worker, (out, err) in zip(workers, outputs, strict=True):
        if worker.returncode != 0:
            raise RuntimeError(f"a runner process failed ({worker.returncode}): {out[-2000:]}{err[-2000:]}")
    return wall


def tally(counted: dict[str, int], expected: set[str]) -> dict[str, int]:
    """Stored transcripts (cache key -> copies) against the plan's keys: how many are stored, lost
    (planned, not stored), duplicated (copies beyond the first) and extra (stored, not planned)."""
    return {
        "stored": sum(counted.values()),
        "lost": len(expected - counted.keys()),
        "duplicated": sum(n - 1 for n in counted.values() if n > 1),
        "extra": len(counted.keys() - expected),
    }


def accounting(store: Store, expected: set[str]) -> dict[str, int]:
    """The store's tally, with the errors it recorded and its runs that did not end done."""
    counted = dict(store.query("SELECT transcript_id, count(*) FROM transcripts GROUP BY ALL"))
    return tally(counted, expected) | {
        "errors": store.scalar("SELECT count(*) FROM errors"),
        "runs_not_done": store.scalar("SELECT count(*) FROM runs WHERE status <> 'done'"),
    }


def _span_s(store: Store) -> float:
    """Seconds from the first run's creation to the last run's last update: the runs' sending and
    writing, without process start, planning and the grading after."""
    return float(store.scalar("SELECT epoch(max(updated_at)) - epoch(min(created_at)) FROM runs"))


def _case(
    case: str, where: str, server: SlowServer, spec: runner.RunSpec, shards: int | None
) -> dict[str, Any]:
    """One case of the throughput: the plan run into a new store `where`; its row."""
    store = facts_store(where)
    expected = {job.key for job in runner.plan(store, spec).jobs}
    asked = server.requests
    wall = _run_processes(where, server.url, spec.limit or 0, spec.samples, shards)
    counts = accounting(store, expected) | {"requests": server.requests - asked}
    span = _span_s(store)
    row = result("ducklake throughput", case, [wall * 1000], processes=shards or 1)
    row |= {"transcripts": len(expected), "span_s": round(span, 2)}
    row |= {
        "per_s": round(len(expected) / wall, 2),
        "per_s_span": round(len(expected) / span, 2),
        "exact": counts["stored"] == counts["requests"] == len(expected)
        and not (counts["lost"] or counts["duplicated"] or counts["extra"] or counts["errors"])
        and counts["runs_not_done"] == 0,
    } | counts
    if isinstance(store, LakeStore):
        row["files_after_run"] = store.data_files()
        row["files_before_compact"], row["files_after_compact"] = store.compact(keep_minutes=0)
        kept = {k: v for k, v in counts.items() if k != "requests"}
        row["same_after_compact"] = accounting(store, expected) == kept
    print(
        f"  {case:<34} {len(expected):,} transcripts: {row['per_s']:.1f}/s wall "
        f"({wall:.1f} s), {row['per_s_span']:.1f}/s in the runs ({span:.1f} s); "
        f"lost {counts['lost']}, duplicated {counts['duplicated']}, extra {counts['extra']}"
    )
    return row


def throughput(
    pg: postgres.Postgres, folder: Path, items: int, samples: int, delay_s: float
) -> list[dict[str, Any]]:
    """The same plan, against one loopback server answering after `delay_s`: one process into a
    DuckDB file; one process into a DuckLake store (what one lake writer does alone); WORKERS
    sharded processes into another DuckLake store. One row each; the last has the ratio to the first
    (the goal) and to the second (how the lake scales with its writers)."""
    rows = []
    with SlowServer(delay=delay_s) as server:
        spec = runner.RunSpec(MODEL, (FACTS,), limit=items, samples=samples, base_url=server.url)
        rows.append(_case("one process, DuckDB file", str(folder / "run.duckdb"), server, spec, None))
        for shards in (None, WORKERS):
            with lake_target(pg, folder / f"lake-{shards or 1}") as target:
                case = f"{WORKERS} sharded processes, DuckLake" if shards else "one process, DuckLake"
                rows.append(_case(case, target, server, spec, shards))
    for row in rows:
        row["delay_ms"] = delay_s * 1000
    file, alone, sharded = rows
    ratio, ratio_span = sharded["per_s"] / file["per_s"], sharded["per_s_span"] / file["per_s_span"]
    sharded |= {
        "ratio": round(ratio, 2),
        "ratio_span": round(ratio_span, 2),
        "ratio_to_one_lake_process": round(sharded["per_s"] / alone["per_s"], 2),
        "target_ratio": GOAL_THROUGHPUT,
        "met": ratio >= GOAL_THROUGHPUT,
    }
    print(
        f"  ratio to the file {ratio:.2f} wall, {ratio_span:.2f} in the runs (goal at least "
        f"{GOAL_THROUGHPUT:g}); to one lake process {sharded['ratio_to_one_lake_process']:.2f}"
    )
    return rows


def queries(
    pg: postgres.Postgres, path: Path, size: str, repeats: int, budget_s: float = 20.0
) -> list[dict[str, Any]]:
    """The file store at `path` copied into DuckLake and compacted; then bench_queries' pages on
    both, alternately, `repeats` times each after one untimed load (fewer, at least 3, where a pair
    would take more than `budget_s` in all)."""
    with (
        tempfile.TemporaryDirectory(dir=path.parent) as folder,
        lake_target(pg, Path(folder) / "lake-data") as target,
    ):
        on_file, on_lake = Store(path), Store(target)
        start = time.perf_counter()
        copied = copy_store(on_file, on_lake)
        copy_s = time.perf_counter() - start
        files = on_lake.compact(keep_minutes=0)
        n = on_lake.scalar("SELECT count(*) FROM transcripts")
        assert n == on_file.scalar("SELECT count(*) FROM transcripts") == copied["transcripts"][1]
        print(
            f"  copied {n:,} transcripts into DuckLake in {copy_s:.0f} s; data files {files[0]} -> {files[1]}"
        )
        rows = []
        file_pages, lake_pages = bench_queries.pages(on_file), bench_queries.pages(on_lake)
        for name in file_pages:
            pair = (file_pages[name], lake_pages[name])
            warm = [time_calls(page, 1, warmup=1)[0] for page in pair]  # untimed warm-up, then one timed
            times: tuple[list[float], list[float]] = ([warm[0]], [warm[1]])
            for _ in range(max(2, min(repeats, int(budget_s * 1000 / max(sum(warm), 1e-3))) - 1)):
                for page, kept in zip(pair, times, strict=True):
                    kept += time_calls(page, 1, warmup=0)
            ratio = p95(times[1]) / p95(times[0])
            extra = {"size": size, "transcripts": n}
            rows.append(result("ducklake queries", f"{name} (file)", times[0], **extra))
            rows.append(
                result("ducklake queries", f"{name} (DuckLake)", times[1], **extra)
                | {"ratio": round(ratio, 2), "target_ratio": GOAL_QUERIES, "met": ratio <= GOAL_QUERIES}
            )
            print(
                f"  {size:>5} {name:<28} p95 file {p95(times[0]):8.1f} ms  lake {p95(times[1]):8.1f} ms  "
                f"ratio {ratio:.2f}"
            )
        rows[0] |= {"copy_s": round(copy_s, 1), "lake_files": list(files)}
        for store in (on_file, on_lake):
            shutil.rmtree(tablecache.folder(store), ignore_errors=True)
    return rows


def tables(rows: list[dict[str, Any]]) -> str:
    """The rows as Markdown: throughput with the accounting and data files, then the queries."""
    runs = [r for r in rows if r["bench"] == "ducklake throughput"]
    lines = []
    if runs:
        lines += [
            f"**Runner throughput** ({runs[0]['transcripts']:,} transcripts, a loopback server answering "
            f"after {runs[0]['delay_ms']:.0f} ms, concurrency 4 per process)",
            "",
            "| case | transcripts/s (wall) | transcripts/s (in the runs) | lost / duplicated / extra "
            "| data files after the run / compacted |",
            "|---|---|---|---|---|",
        ]
        for r in runs:
            files = f"{r['files_after_run']} / {r['files_after_compact']}" if "files_after_run" in r else ""
            lines.append(
                f"| {r['case']} | {r['per_s']:.1f} | {r['per_s_span']:.1f} "
                f"| {r['lost']} / {r['duplicated']} / {r['extra']} | {files} |"
            )
        last = runs[-1]
        verdict = "met" if last["met"] else "**missed**"
        lines += [
            "",
            f"Ratio {last['case']} / {runs[0]['case']}: **{last['ratio']:.2f}** wall, "
            f"{last['ratio_span']:.2f} in the runs (goal at least {GOAL_THROUGHPUT:g}: {verdict}).",
            "",
        ]
    asked = [r for r in rows if r["bench"] == "ducklake queries"]
    if asked:
        lines += [
            f"**Page queries, DuckDB file against DuckLake** ({asked[0]['size']} store; median / p95 ms)",
            "",
            f"| page | file | DuckLake | p95 ratio (goal at most {GOAL_QUERIES:g}) |",
            "|---|---|---|---|",
        ]
        for file, lake in zip(asked[::2], asked[1::2], strict=True):
            verdict, page = ("" if lake["met"] else " **missed**"), file["case"].removesuffix(" (file)")
            lines.append(
                f"| {page} | {file['median_ms']:,.0f} / {file['p95_ms']:,.0f} "
                f"| {lake['median_ms']:,.0f} / {lake['p95_ms']:,.0f} | {lake['ratio']:.2f}{verdict} |"
            )
        lines.append("")
    return "\n".join(lines)


def run(
    path: Path | None, size: str, repeats: int, items: int = ITEMS, samples: int = 1, delay_s: float = 0.05
) -> list[dict[str, Any]]:
    """Both parts against one PostgreSQL: the throughput, then (with a store `path`) the queries."""
    with postgres.running() as pg, tempfile.TemporaryDirectory() as folder:
        rows = throughput(pg, Path(folder), items, samples, delay_s)
        if path is not None:
            rows += queries(pg, path, size, repeats)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "path", type=Path, nargs="?", help="a synthetic store (bench/generate.py) for the queries"
    )
    parser.add_argument("--size", default="?", help="its size, for the results (10k, 100k, 1M)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--items", type=int, default=ITEMS, help="items of the facts set in the plan")
    parser.add_argument("--samples", type=int, default=1, help="samples per probe in the plan")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the server's delay per request")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = run(args.path, args.size, args.repeats, args.items, args.samples, args.delay_ms / 1000)
    print(tables(rows))
    print(f"saved {save('ducklake', rows)} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
