"""The Pressure page end to end: the real server (`streamlit run app.py`) on a store holding two
models' graded replies at every rung of the pressure ladder (tests.test_ladder.ladder_store), opened in
headless Chromium from a link. The ladder chart must draw both measures with their error bars, and
picking another model must put it in the URL, so that a copied link reopens it. The screenshot goes
to artifacts/e2e/ladder.png (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import Browser, Page, expect

from lib.probes import framings
from tests import browser
from tests.browser import charts_drawn, choose, open_url, problems, shoot, widget
from tests.test_ladder import FIRM, SWAYED, ladder_store

SHOTS = browser.REPO / "artifacts" / "e2e"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[str]:
    db: Path = ladder_store(tmp_path_factory.mktemp("ladder") / "store.duckdb")
    with browser.dashboard(db, SHOTS / "ladder-server.log") as url:
        yield url


def test_the_ladder_chart_draws_and_the_model_picker_is_in_the_url(app):
    with browser.chromium() as chromium:
        run(chromium, app)


def drawn_ladder(page: Page, model: str) -> None:
    """The one chart shows `model`'s two measures, a point and an error bar at every rung."""
    charts_drawn(page)
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart).to_have_count(1)
    legend = chart.locator(".legend .legendtext").all_text_contents()  # SVG: text, not innerText
    assert legend == [f"{model}: accuracy", f"{model}: takes the user's wrong side"]
    rungs = len(framings.LADDER_RUNGS)
    assert chart.locator(".scatterlayer .trace").count() == 2
    assert chart.locator(".scatterlayer .point").count() == 2 * rungs
    assert chart.locator(".errorbar").count() == 2 * rungs
    ticks = chart.locator(".xtick text").all_text_contents()
    assert [t.replace(" ", "") for t in ticks] == [
        framings.get(r).label.replace(" ", "") for r in framings.LADDER_RUNGS
    ]


def run(chromium: Browser, app: str) -> None:
    page = browser.new_page(chromium)
    open_url(page, f"{app}/pressure?model={SWAYED}", "Pressure")
    assert not problems(page)
    drawn_ladder(page, SWAYED)
    expect(widget(page, "url_model").get_by_role("combobox")).to_have_value(SWAYED)
    shoot(page, SHOTS / "ladder.png")

    choose(page, "url_model", FIRM)
    drawn_ladder(page, FIRM)
    assert parse_qs(urlparse(page.url).query)["model"] == [FIRM]
    assert not problems(page)

    # the link reopens the page on the model it names, in a session of its own
    again = browser.new_page(chromium)
    open_url(again, page.url, "Pressure")
    drawn_ladder(again, FIRM)
    expect(widget(again, "url_model").get_by_role("combobox")).to_have_value(FIRM)
