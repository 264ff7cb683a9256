"""The one timing helper every bench uses: run a function a few times, keep median and p95, and say
whether a target is met. Results are plain dicts so that run_all.py can write them as JSON."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def time_calls(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall times in milliseconds of `repeats` calls of fn, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def time_within(fn: Callable[[], Any], repeats: int, budget_s: float) -> list[float]:
    """Like time_calls, but fewer repeats (at least 3) when `repeats` calls would take longer than
    `budget_s`, judging by the first call, which is timed too."""
    first = time_calls(fn, 1, warmup=0)
    fit = int(budget_s * 1000 / max(first[0], 1e-3))
    return first + time_calls(fn, max(2, min(repeats, fit) - 1), warmup=0)


def p95(times: list[float]) -> float:
    """The 95th percentile by nearest rank: with 20 samples, the second largest."""
    ordered = sorted(times)
    return ordered[max(0, min(len(ordered) - 1, round(0.95 * len(ordered)) - 1))]


def result(
    bench: str, case: str, times_ms: list[float], target_ms: float | None = None, **extra: Any
) -> dict[str, Any]:
    """One row of the results table. `target_ms` is compared with p95."""
    row: dict[str, Any] = {
        "bench": bench,
        "case": case,
        "n": len(times_ms),
        "median_ms": round(statistics.median(times_ms), 2),
        "p95_ms": round(p95(times_ms), 2),
    }
    if target_ms is not None:
        row |= {"target_ms": target_ms, "met": row["p95_ms"] < target_ms}
    return row | extra


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    import os

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    import duckdb

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 1e6, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "os": platform.platform(),
    }


def save(name: str, rows: list[dict[str, Any]]) -> Path:
    """Write one bench's rows to bench/results/<name>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(rows, indent=1, default=str))
    return path
