"""The DuckLake bench's throughput part at a tiny size, against a real PostgreSQL: its runner processes
fill each store with exactly the plan's transcripts, and its accounting would see one lost, duplicated
or extra. Not its timing: speed is measured by bench/, never by tests."""

from __future__ import annotations

import pytest

from bench import bench_ducklake
from tests import postgres

pytestmark = pytest.mark.skipif(
    postgres.binaries() is None,
    reason="PostgreSQL is not installed: `make install-test` installs Debian's postgresql package",
)


def test_the_throughput_bench_stores_every_planned_transcript_once(tmp_path):
    with postgres.running() as pg:
        rows = bench_ducklake.throughput(pg, tmp_path, items=3, samples=1, delay_s=0.0)
    assert [r["processes"] for r in rows] == [1, 1, bench_ducklake.WORKERS]
    for row in rows:
        assert row["transcripts"] == 12  # 3 items x 4 framings
        assert (row["stored"], row["requests"]) == (12, 12)
        assert (row["lost"], row["duplicated"], row["extra"], row["errors"], row["runs_not_done"]) == (0,) * 5
        assert row["exact"]
    for lake in rows[1:]:
        assert lake["same_after_compact"]  # compaction (inlined rows written out as files) kept them all
    assert "ratio" in rows[2] and "met" in rows[2]


def test_the_tally_counts_lost_duplicated_and_extra():
    counts = bench_ducklake.tally({"a": 1, "b": 3, "x": 1}, {"a", "b", "c"})
    assert counts == {"stored": 5, "lost": 1, "duplicated": 2, "extra": 1}
    assert bench_ducklake.tally({"a": 1, "b": 1}, {"a", "b"}) == {
        "stored": 2,
        "lost": 0,
        "duplicated": 0,
        "extra": 0,
    }
