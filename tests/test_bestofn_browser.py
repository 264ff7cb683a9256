"""The "Why: preferences" page's best-of-N part end to end: the real server (`streamlit run app.py`)
on the made-up store of tests/test_bestofn.py (real graders, scores from the loopback reward model),
opened in headless Chromium from a link. The chart must draw its line with error bars at every N,
and the link must reopen the same choice. The screenshot goes to artifacts/e2e/bestofn.png
(git-ignored)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests import browser, fake_reward
from tests.browser import WAIT_MS, charts_drawn, open_url, problems, shoot, widget
from tests.test_bestofn import made_up_store

SHOTS = browser.REPO / "artifacts" / "e2e"


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[str]:
    db: Path = tmp_path_factory.mktemp("bestofn") / "store.duckdb"
    with fake_reward.serve("my-rm") as (url, _):
        made_up_store(db, url)
    with browser.dashboard(db, SHOTS / "bestofn-server.log") as url:
        yield url


def test_the_best_of_n_chart_draws_from_a_link(app):
    with browser.chromium() as chromium:
        run(chromium, app)


def run(chromium: Browser, app: str) -> None:
    page = browser.new_page(chromium)
    open_url(page, f"{app}/why?why_part=bestofn&bon_set=bon-answer", "Why: preferences")
    charts_drawn(page)
    assert not problems(page)
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart).to_have_count(1)
    legend = chart.locator(".legend .legendtext").all_text_contents()  # SVG: text, not innerText
    assert legend == ["Suggests a wrong answer"]
    # one point per N (1, 2, 4) on the answer panel, each with its error bar
    assert chart.locator(".scatterlayer .point").count() == 3
    assert chart.locator(".errorbar").count() == 3
    assert "Answer: accuracy drop" in chart.locator(".annotation").all_text_contents()
    expect(page.get_by_test_id("stMetricValue")).to_have_text("4", timeout=WAIT_MS)
    expect(widget(page, "url_bon_set").get_by_role("combobox")).to_have_value("bon-answer")
    expect(page.get_by_text("as reported in the paper", exact=False).first).to_be_visible()
    shoot(page, SHOTS / "bestofn.png")
