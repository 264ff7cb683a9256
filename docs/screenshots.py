"""The README's screenshots, taken from the real dashboard on a store of your choice:

    python -m docs.screenshots --db STORE [--out docs] [--only NAME ...]

writes transcripts.png (a flipped answer opened beside its neutral one) and overview.png (the cards
and the accuracy-drop chart), img/ladder.png (the Pressure page: the pressure ladder of
bundled:smollm2), img/deck.png (the Deck page presenting its second slide) and why-preferences.png
(the Why page's misconceptions part, bundled:smollm2 scoring by log-probability, after
`python -m lib prefer --judge bundled:smollm2 --mode logprob`); `--only ladder` takes
that one alone. transcripts and overview need answers of the built-in facts set with at least one
flip, e.g. `python -m lib ingest builtin/facts-answer` then
`python -m lib run --model bundled:smollm2 --set builtin/facts-answer --limit 8 --max-tokens 48`;
ladder needs complete ladders of the bundled model: `python -m lib ingest builtin/pressure-ladder`
then `python -m lib run --model bundled:smollm2 --set builtin/pressure-ladder --limit 20` (what
img/ladder.png shows); deck needs a deck of at least two pairs pinned on the Deck page."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import Locator, Page, expect

from tests import browser

WIDTH = 1400
MARGIN = 24
LOG = browser.REPO / "artifacts" / "screenshots-server.log"


def _save(page: Page, path: Path, last: Locator) -> Path:
    """The main area from its title to the bottom of `last`, with the window as tall as the page (the
    main area scrolls inside it), written by _write."""
    height = page.get_by_test_id("stMain").evaluate("e => e.scrollHeight")
    page.set_viewport_size({"width": WIDTH, "height": height})
    browser.settle(page)
    browser.charts_drawn(page)
    boxes = [
        x.bounding_box()
        for x in (
            page.get_by_test_id("stMainBlockContainer"),
            page.locator("h1"),
            last,
            page.get_by_test_id("stSidebar"),
        )
    ]
    content, title, end, sidebar = boxes
    assert content and title and end and sidebar
    left = max(sidebar["x"] + sidebar["width"] + 1, content["x"] - MARGIN)
    top = max(0, title["y"] - MARGIN)
    clip = {
        "x": left,
        "y": top,
        "width": min(WIDTH, content["x"] + content["width"] + MARGIN) - left,
        "height": min(height, end["y"] + end["height"] + MARGIN // 3) - top,
    }
    page.mouse.move(WIDTH - 1, height - 1)  # no hover toolbar on a table or chart
    shot = page.screenshot(clip=clip)
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    return _write(shot, path)


def _write(shot: bytes, path: Path) -> Path:
    """A PNG in a palette of 256 colours: a UI has few, and the file stays small."""
    Image.open(io.BytesIO(shot)).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def transcripts(page: Page, url: str, out: Path) -> Path:
    browser.open_url(
        page, f"{url}/transcripts?set=builtin/facts-answer&framing=suggests_wrong&flips=true", "Transcripts"
    )
    grid = page.get_by_test_id("stDataFrame").bounding_box()
    assert grid is not None, "no flipped answer in this store"
    page.mouse.click(grid["x"] + 14, grid["y"] + 35 + 17)  # the first row
    expect(page.get_by_role("heading", level=3)).to_be_visible()
    browser.settle(page)
    return _save(page, out / "transcripts.png", page.get_by_test_id("stChatMessage").last)


def overview(page: Page, url: str, out: Path) -> Path:
    browser.open_url(page, url, "Sycoscope")
    return _save(page, out / "overview.png", page.get_by_text("Bars: drop = accuracy"))


def ladder(page: Page, url: str, out: Path) -> Path:
    browser.open_url(page, f"{url}/pressure?pressure_part=ladder&model=bundled:smollm2", "Pressure")
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)  # none: no complete ladder stored
    return _save(page, out / "img" / "ladder.png", page.get_by_test_id("stDataFrame").last)


def deck(page: Page, url: str, out: Path) -> Path:
    """The whole window in presentation mode, as the room sees a slide."""
    page.set_viewport_size({"width": 1600, "height": 1000})
    browser.open_url(page, f"{url}/deck?present=1&slide=2", "Deck")
    expect(browser.widget(page, "slide")).to_be_visible()  # none: the store's deck is empty
    browser.settle(page)
    page.mouse.move(1599, 999)
    shot = page.screenshot()
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    return _write(shot, out / "img" / "deck.png")


def why(page: Page, url: str, out: Path) -> Path:
    browser.open_url(
        page, f"{url}/why?why_part=misconceptions&pref_judge=bundled:smollm2&pref_mode=logprob", "Why"
    )
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(1)  # none: no logprob test stored
    return _save(page, out / "why-preferences.png", page.get_by_test_id("stDataFrame").last)


TAKES = {"transcripts": transcripts, "overview": overview, "ladder": ladder, "deck": deck, "why": why}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, required=True, help="the store to show")
    parser.add_argument("--out", type=Path, default=browser.REPO / "docs")
    parser.add_argument("--only", action="append", choices=list(TAKES), help="this screenshot only (repeat)")
    args = parser.parse_args()
    (args.out / "img").mkdir(parents=True, exist_ok=True)
    with browser.dashboard(args.db, LOG) as url, browser.chromium() as b:
        page = browser.new_page(b, WIDTH)
        for take in [TAKES[name] for name in args.only or TAKES]:
            path = take(page, url, args.out)
            assert not browser.problems(page), browser.problems(page)
            print(f"{path}: {path.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
