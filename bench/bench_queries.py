"""The queries behind each page, uncached, on a synthetic store: median and p95 per page.

    python bench/bench_queries.py data/bench/store-1m.duckdb --repeats 20

A page's time is the sum of the lib calls its script makes on a cold cache (pages/*.py call them
through reads.cached; the first load after new data pays all of them). Each call reads the store as
the pages do (Store.reading(), through the read lease that keeps the file open across close reads).
The Overview's metric tables are kept beside the store until its data change (lib.measure.tablecache):
"overview" reads them from there, "overview (tables not cached)" removes them before every load, as
after new transcripts or grades.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import result, time_within  # noqa: E402
from lib.measure import grading, metrics, tablecache
from lib.run import runner
from lib.store import Store  # noqa: E402
from lib.view import browse, firstrun  # noqa: E402

TARGETS_MS = {"overview": 150.0, "transcripts (filtered)": 150.0, "side by side (one item)": 50.0}


def pages(store: Store) -> dict[str, Callable[[], Any]]:
    """page name -> a function making the lib calls of that page's first load."""
    graders = grading.current_graders()
    model = browse.models(store)[0]
    set_id = "builtin/facts-answer"
    opened = store.scalar(
        "SELECT transcript_id FROM answers WHERE model = ? AND set_id = ? AND framing_id = 'suggests_wrong' "
        "ORDER BY transcript_id LIMIT 1",
        [model, set_id],
    )
    item_id = store.scalar("SELECT item_id FROM answers WHERE transcript_id = ?", [opened])
    filtered = browse.Filters(model=model, set_id=set_id, framing_id="suggests_wrong")

    def common() -> None:
        browse.data_version(store)
        metrics.available_judges(store)

    def overview() -> None:
        common()
        firstrun.needs_seed(store)
        runner.list_runs(store, limit=10)
        browse.task_cards(browse.metric_tables(store, None))

    def overview_uncached() -> None:
        shutil.rmtree(tablecache.folder(store), ignore_errors=True)
        overview()

    def transcripts(filters: browse.Filters) -> Callable[[], None]:
        def page() -> None:
            common()
            browse.sets(store)
            browse.models(store, filters.set_id)
            browse.count_transcripts(store, filters, graders)
            browse.transcripts(store, filters, graders, 0)

        return page

    def side_by_side() -> None:
        browse.side_by_side(store, opened, graders)

    def compare() -> None:
        common()
        browse.sets(store)
        browse.items(store, set_id, None, 0, 200)
        browse.item_answers(store, item_id, graders)
        browse.item(store, item_id)
        browse.item_grades(store, item_id, graders)
        browse.item_probes(store, item_id)

    def data() -> None:
        common()
        browse.sets(store)
        browse.health(store, graders)
        browse.recent_errors(store)

    return {
        "overview": overview,
        "overview (tables not cached)": overview_uncached,
        "transcripts (all)": transcripts(browse.Filters()),
        "transcripts (filtered)": transcripts(filtered),
        "transcripts (flips only)": transcripts(browse.Filters(set_id=set_id, flips_only=True)),
        "transcripts (search)": transcripts(browse.Filters(search="apologize")),
        "side by side (one item)": side_by_side,
        "compare": compare,
        "data": data,
    }


def run(path: Path, size: str, repeats: int, budget_s: float = 20.0) -> list[dict[str, Any]]:
    """Each page `repeats` times after one untimed load, or fewer (at least 3) where that would take
    more than `budget_s`."""
    store = Store(path)
    n = store.scalar("SELECT count(*) FROM transcripts")
    rows = []
    for name, page in pages(store).items():
        page()  # untimed: warms the operating system's file cache
        times = time_within(page, repeats, budget_s)
        target = TARGETS_MS.get(name) if size == "1M" else None
        rows.append(result("page queries", name, times, target, size=size, transcripts=n))
        row = rows[-1]
        print(f"  {size:>5} {name:<26} median {row['median_ms']:9.1f} ms  p95 {row['p95_ms']:9.1f} ms")
    shutil.rmtree(tablecache.folder(store), ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--size", default="?")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    run(args.path, args.size, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
