"""Time to a rendered page: the real dashboard (`streamlit run app.py`) on a synthetic store, driven
by headless Chromium through Playwright.

    python bench/bench_browser.py data/bench/store-1m.duckdb --repeats 3

A page counts as rendered when its title is shown, the Streamlit front end reports no script run
going on, and the page's main content is there (the Overview's chart drawn, the Transcripts table,
the side-by-side conversation, ...). Each page is first loaded in a fresh server, whose query cache
is empty ("first load"); then `repeats` more times in new browser tabs ("again": the server's cache
keyed on the store's data version answers). Server start and browser start are not timed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from playwright.sync_api import Page, expect  # noqa: E402

from bench.timing import result  # noqa: E402
from lib.store import Store  # noqa: E402
from tests.browser import charts_drawn, chromium, dashboard, open_url, problems  # noqa: E402

SET_ID = "builtin/facts-answer"


def _pages(store: Store) -> dict[str, tuple[str, str, str]]:
    """page name -> (path and query, title, test id of the element that shows the page is there)."""
    model = store.scalar("SELECT min(model) FROM transcripts")
    opened, item_id = store.query(
        "SELECT transcript_id, item_id FROM answers WHERE model = ? AND set_id = ? "
        "AND framing_id = 'suggests_wrong' ORDER BY transcript_id LIMIT 1",
        [model, SET_ID],
    )[0]
    filters = {"set": SET_ID, "model": model, "framing": "suggests_wrong"}
    return {
        "overview": ("/", "Sycoscope", "stPlotlyChart"),
        "transcripts (filtered)": (f"/transcripts?{urlencode(filters)}", "Transcripts", "stDataFrame"),
        "side by side (one item)": (
            f"/transcripts?{urlencode(filters | {'open': opened})}",
            "Transcripts",
            "stChatMessage",
        ),
        "compare": (
            f"/compare?{urlencode({'set': SET_ID, 'item': item_id})}",
            "Compare models",
            "stChatMessage",
        ),
        "data": ("/data", "Data", "stDataFrame"),
    }


def _load(page: Page, url: str, title: str, marker: str) -> float:
    start = time.perf_counter()
    open_url(page, url, title)
    expect(page.get_by_test_id(marker).first).to_be_visible()
    if marker == "stPlotlyChart":
        charts_drawn(page)
    elapsed = (time.perf_counter() - start) * 1000
    found = problems(page)
    if found:
        raise RuntimeError(f"{url}: the page shows an error: {found[0][:300]}")
    return elapsed


def run(path: Path, size: str, repeats: int) -> list[dict[str, Any]]:
    store = Store(path)
    rows = []
    with tempfile.TemporaryDirectory() as logs, chromium() as browser:
        for name, (where, title, marker) in _pages(store).items():
            with dashboard(path, Path(logs) / "streamlit.log") as base:
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                first = _load(context.new_page(), base + where, title, marker)
                again = [_load(context.new_page(), base + where, title, marker) for _ in range(repeats)]
                context.close()
            rows.append(result("page in Chromium", name, again, size=size, first_load_ms=round(first, 1)))
            print(f"  {name:<26} first {first:8.0f} ms, again median {rows[-1]['median_ms']:8.0f} ms")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path)
    parser.add_argument("--size", default="?")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    run(args.path, args.size, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
