"""The "What predicts human preference" part of the Why page end to end: the real server (`streamlit
run app.py`) on a store holding feature labels of the project's own comparisons (written by the real
labeller, the judge an in-process stand-in with fixed rules), opened in headless Chromium from a link.
The chart must draw one point per feature with its interval, and a link must reopen the same choice
of features. The screenshot goes to artifacts/e2e/features.png (git-ignored)."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from lib.measure import features
from lib.probes import preferences_hh
from lib.probes.items import Message
from lib.run.providers.base import Reply
from lib.store import Store
from tests import browser
from tests.browser import E2E, WAIT_MS, one_chart, open_url, shoot
from tests.test_features import FIXTURE

JUDGE = "openai:rule-judge"
LABELLED = ["matches_beliefs", "truthful", "concise", "longer"]


class RuleJudge:
    """A judge with fixed rules, in process: the longer reply is more of every feature but concise,
    where the shorter one is; the user's beliefs are matched by the reply that starts with "Yes" (when
    neither does, the shorter one)."""

    model, base_url, prefill_mode = JUDGE, None, "instruction"

    def complete(
        self, messages: list[Message], temperature: float | None, max_tokens: int, seed=None
    ) -> Reply:
        prompt = messages[-1]["content"]
        a, b = (re.search(rf"<reply_{x}>\n(.*?)\n</reply_{x}>", prompt, re.S).group(1) for x in "AB")  # type: ignore[union-attr]
        if "beliefs" in prompt:
            pick = "A" if a.startswith("Yes") or not b.startswith("Yes") and len(a) < len(b) else "B"
        else:
            pick = "A" if (len(a) > len(b)) != ("concise" in prompt) else "B"
        return Reply(pick, 1, 1, 1.0, "stop", {"model": "rule-judge-1"})


def labelled_store(db: Path) -> None:
    """The feature labels of tests/test_features.py's comparisons, by the real labeller and RuleJudge."""
    data = preferences_hh.read(FIXTURE)
    features.Labeller(Store(db), JUDGE, data.source, provider=RuleJudge()).run(data.pairs, LABELLED)


app = browser.served("features", labelled_store)


def test_the_feature_chart_draws_from_a_link_and_a_link_picks_the_features(app):
    with browser.opened(
        f"{app}/why?why_part=features&feat_judge=openai%3Arule-judge", "Why: preferences"
    ) as page:
        chart = one_chart(page)
        expect(chart.locator(".scatterlayer .point")).to_have_count(len(LABELLED), timeout=WAIT_MS)
        assert chart.locator(".errorbar").count() == len(LABELLED)
        ticks = chart.locator(".ytick text").all_text_contents()  # SVG: text, not innerText
        assert sorted(ticks) == sorted(features.FEATURES[f].name for f in LABELLED)
        expect(page.get_by_test_id("stMetricValue")).to_have_text("12", timeout=WAIT_MS)
        expect(page.get_by_text("As reported in the paper")).to_be_visible()
        shoot(page, E2E / "features.png")

        open_url(page, f"{app}/why?why_part=features&feat_f=truthful&feat_f=longer", "Why: preferences")
        chart = one_chart(page)
        expect(chart.locator(".scatterlayer .point")).to_have_count(2, timeout=WAIT_MS)
        assert sorted(chart.locator(".ytick text").all_text_contents()) == ["longer", "truthful"]
