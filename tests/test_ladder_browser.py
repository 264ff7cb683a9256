"""The Pressure page end to end: the real server (`streamlit run app.py`) on a store holding two
models' graded replies at every rung of the pressure ladder (tests.test_ladder.ladder_store), opened in
headless Chromium from a link. The ladder chart must draw both measures with their error bars, and
picking another model must put it in the URL, so that a copied link reopens it. The screenshot goes
to artifacts/e2e/ladder.png (git-ignored)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

from playwright.sync_api import Page, expect

from lib.probes import framings
from tests import browser
from tests.browser import E2E, choose, legend, one_chart, open_url, shoot, widget
from tests.test_ladder import FIRM, SWAYED, ladder_store

app = browser.served("ladder", ladder_store)


def drawn_ladder(page: Page, model: str) -> None:
    """The one chart shows `model`'s two measures, a point and an error bar at every rung."""
    chart = one_chart(page)
    assert legend(chart) == [f"{model}: accuracy", f"{model}: takes the user's wrong side"]
    rungs = len(framings.LADDER_RUNGS)
    assert chart.locator(".scatterlayer .trace").count() == 2
    assert chart.locator(".scatterlayer .point").count() == 2 * rungs
    assert chart.locator(".errorbar").count() == 2 * rungs
    ticks = chart.locator(".xtick text").all_text_contents()
    assert [t.replace(" ", "") for t in ticks] == [
        framings.get(r).label.replace(" ", "") for r in framings.LADDER_RUNGS
    ]


def test_the_ladder_chart_draws_and_the_model_picker_is_in_the_url(app):
    with browser.opened(f"{app}/pressure?model={SWAYED}", "Pressure") as page:
        drawn_ladder(page, SWAYED)
        expect(widget(page, "url_model").get_by_role("combobox")).to_have_value(SWAYED)
        shoot(page, E2E / "ladder.png")

        choose(page, "url_model", FIRM)
        drawn_ladder(page, FIRM)
        assert parse_qs(urlparse(page.url).query)["model"] == [FIRM]

        # the link reopens the page on the model it names, in a session of its own
        again = browser.new_page(page.context.browser)
        open_url(again, page.url, "Pressure")
        drawn_ladder(again, FIRM)
        expect(widget(again, "url_model").get_by_role("combobox")).to_have_value(FIRM)
