"""The "Why: preferences" page's best-of-N part end to end: the real server (`streamlit run app.py`)
on the made-up store of tests/test_bestofn.py (real graders, scores from the loopback reward model),
opened in headless Chromium from a link. The chart must draw its line with error bars at every N,
and the link must reopen the same choice. The screenshot goes to artifacts/e2e/bestofn.png
(git-ignored)."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import expect

from tests import browser, fake_reward
from tests.browser import E2E, WAIT_MS, legend, one_chart, shoot, widget
from tests.test_bestofn import made_up_store


def scored_store(db: Path) -> None:
    """tests/test_bestofn.py's made-up store, its replies scored by the loopback reward model."""
    with fake_reward.serve("my-rm") as (url, _):
        made_up_store(db, url)


app = browser.served("bestofn", scored_store)


def test_the_best_of_n_chart_draws_from_a_link(app):
    with browser.opened(f"{app}/why?why_part=bestofn&bon_set=bon-answer", "Why: preferences") as page:
        chart = one_chart(page)
        assert legend(chart) == ["Suggests a wrong answer"]
        # one point per N (1, 2, 4) on the answer panel, each with its error bar
        assert chart.locator(".scatterlayer .point").count() == 3
        assert chart.locator(".errorbar").count() == 3
        assert "Answer: accuracy drop" in chart.locator(".annotation").all_text_contents()
        expect(page.get_by_test_id("stMetricValue")).to_have_text("4", timeout=WAIT_MS)
        expect(widget(page, "url_bon_set").get_by_role("combobox")).to_have_value("bon-answer")
        expect(page.get_by_text("as reported in the paper", exact=False).first).to_be_visible()
        shoot(page, E2E / "bestofn.png")
