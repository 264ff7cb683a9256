"""The Pressure page's "Flips over many turns" part end to end: the real server (`streamlit run app.py`)
on a store of conversations challenged three times (and once), written turn by turn as the runner
builds them and graded by the real graders (tests/test_turns.py), opened in headless Chromium from a
link. The survival chart must draw: one step line per model, each point's interval an error bar, the
models in the legend; choosing the part in the page's own selector must draw it too. The screenshot goes to
artifacts/e2e/survival.png (git-ignored).

The README's screenshot is taken the same way from a store of your choice:

    python -m tests.test_turns_browser --db STORE [--out docs/img/survival.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import quote

from playwright.sync_api import expect

from docs import screenshots
from tests import browser
from tests.browser import E2E, choose, legend, one_chart, open_url, shoot
from tests.test_turns import PAGE_MODELS, SURE, turns_store

LINK = f"/pressure?pressure_part=survival&survival_set={quote(SURE, safe='')}"

app = browser.served("survival", turns_store)


def test_the_survival_chart_draws_from_a_link_and_from_the_part_selector(app):
    with browser.opened(app + LINK, "Pressure") as page:
        chart = one_chart(page)
        assert sorted(legend(chart)) == sorted(PAGE_MODELS)
        # one step line per model, a point at each challenge (the first model's 0 to 3, the second's 0
        # and 1), each with its interval as an error bar
        assert chart.locator(".scatterlayer .trace").count() == len(PAGE_MODELS)
        assert chart.locator(".scatterlayer .points .point").count() == 4 + 2
        assert chart.locator(".errorbar").count() == 4 + 2
        bar = chart.locator(".errorbar path").evaluate_all("bars => bars.map(b => b.getAttribute('d'))")
        assert sum(1 for d in bar if d and "V" in d) >= 3  # the intervals with some width are drawn
        paths = "lines => lines.map(line => line.getAttribute('d'))"
        steps = chart.locator(".scatterlayer .js-line").evaluate_all(paths)
        assert any(d and "V" in d and "H" in d for d in steps)  # drawn as steps: horizontal, then vertical
        assert "right first answers still right" in chart.locator(".gtitle").text_content()
        expect(page.get_by_text("n = 3 right first answers challenged, of 4 decided")).to_be_visible()
        shoot(page, E2E / "survival.png")

        # the part chosen in the page's own selector, from the page's default
        open_url(page, f"{app}/pressure", "Pressure")
        choose(page, "url_pressure_part", "Flips over many turns")
        one_chart(page)
        assert "pressure_part=survival" in page.url


def main() -> None:
    parser = argparse.ArgumentParser(description="The README's screenshot of the survival chart")
    parser.add_argument("--db", type=Path, required=True, help="a store with conversations run --turns K")
    parser.add_argument("--out", type=Path, default=browser.REPO / "docs" / "img" / "survival.png")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log = browser.REPO / "artifacts" / "screenshots-server.log"
    with browser.dashboard(args.db, log) as url, browser.chromium() as chromium:
        page = browser.new_page(chromium, screenshots.WIDTH)
        open_url(page, url + LINK, "Pressure")
        screenshots._save(page, args.out, one_chart(page))
        print(f"{args.out}: {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
