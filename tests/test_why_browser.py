"""The "Why: preferences" page end to end: the real server (`streamlit run app.py`) on a store holding
a reward model's scores of every built-in misconception item (written by the real preference test
against the loopback Pooling API), opened in headless Chromium from a link. The chart must draw,
with both kinds of truthful reply and the paper's reported points, and a link must reopen the same
choice. The screenshot goes to artifacts/e2e/why.png (git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from lib.probes import misconceptions
from tests import browser
from tests.browser import WAIT_MS, charts_drawn, open_url, problems, shoot, widget
from tests.test_pages import preference_store

SHOTS = browser.REPO / "artifacts" / "e2e"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[str]:
    db: Path = preference_store(tmp_path_factory.mktemp("why") / "store.duckdb")
    with browser.dashboard(db, SHOTS / "why-server.log") as url:
        yield url


def test_the_preference_chart_draws_from_a_link_with_the_papers_points(app):
    with browser.chromium() as chromium:
        run(chromium, app)


def run(chromium: Browser, app: str) -> None:
    page = browser.new_page(chromium)
    open_url(page, f"{app}/why?pref_judge=openai%3Amy-rm&pref_mode=reward", "Why: preferences")
    charts_drawn(page)
    assert not problems(page)
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart).to_have_count(1)
    legend = chart.locator(".legend .legendtext").all_text_contents()  # SVG: text, not innerText
    assert legend == ["vs baseline truthful", "vs helpful truthful", "as reported in the paper"]
    # one bar per band for each kind of truthful reply, error bars drawn
    assert chart.locator(".barlayer .point").count() == 8
    assert chart.locator(".errorbar").count() >= 8
    annotations = chart.locator(".annotation").all_text_contents()
    assert any("95%" in a and "reported" in a for a in annotations)
    assert any("45%" in a and "reported" in a for a in annotations)
    items = str(len(misconceptions.read()))
    expect(page.get_by_test_id("stMetricValue")).to_have_text(items, timeout=WAIT_MS)
    expect(widget(page, "url_pref_mode").get_by_role("combobox")).to_have_value(
        "reward model: the reply it scores higher"
    )
    shoot(page, SHOTS / "why.png")
