"""The "Why: preferences" page. End to end: the real server (`streamlit run app.py`) on a store holding
a reward model's scores of every built-in misconception item (written by the real preference test
against the loopback Pooling API), opened in headless Chromium from a link: the chart must draw,
with both kinds of truthful reply and the paper's reported points, and a link must reopen the same
choice; the screenshot goes to artifacts/e2e/why.png (git-ignored). Through AppTest: a viewer is
offered no run, and a log-probability scorer is shown as such, with the lengths and a warning when
too few items stand beside the paper's numbers."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from lib.measure import preference
from lib.probes import misconceptions
from lib.run import keys
from lib.run.scorers import Scored
from lib.store import Store
from lib.view import access
from tests import browser
from tests.browser import E2E, WAIT_MS, legend, one_chart, shoot, widget
from tests.test_pages import markup, ok, open_page, preference_store

app = browser.served("why", preference_store)


def test_the_preference_chart_draws_from_a_link_with_the_papers_points(app):
    with browser.opened(f"{app}/why?pref_judge=openai%3Amy-rm&pref_mode=reward", "Why: preferences") as page:
        chart = one_chart(page)
        assert legend(chart) == ["vs baseline truthful", "vs helpful truthful", "as reported (Claude 2 PM)"]
        # one bar per band for each kind of truthful reply, error bars drawn
        assert chart.locator(".barlayer .point").count() == 8
        assert chart.locator(".errorbar").count() >= 8
        annotations = chart.locator(".annotation").all_text_contents()
        assert any("95%" in a and "reported" in a for a in annotations)
        assert any("45%" in a and "reported" in a for a in annotations)
        assert not any("too few" in a for a in annotations)  # 36 items, 12 in the hardest band
        items = str(len(misconceptions.read()))
        expect(page.get_by_test_id("stMetricValue")).to_have_text(items, timeout=WAIT_MS)
        expect(widget(page, "url_pref_mode").get_by_role("combobox")).to_have_value(
            "reward model: the reply it scores higher"
        )
        shoot(page, E2E / "why.png")


# -- through AppTest -------------------------------------------------------------------------------
@pytest.fixture
def viewer(monkeypatch, tmp_path):
    """Viewer mode with no operator password anywhere (no secrets file either)."""
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    monkeypatch.delenv(access.PASSWORD_ENV, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")


@pytest.mark.parametrize("filled", [False, True])
def test_a_viewer_is_offered_no_run(tmp_path, monkeypatch, viewer, filled):
    db = tmp_path / "why.duckdb"
    if filled:
        preference_store(db)
    at = open_page(db, monkeypatch, "why")
    ok(at)
    assert not [b for b in at.button if b.key == "why_run"]
    assert not [s for s in at.selectbox if s.key == "why_run_mode"]
    assert "Running the test is off: this dashboard is in viewer mode" in markup(at)
    assert bool(at.get("plotly_chart")) is filled


class ShorterIsLikelier:
    """An in-process stand-in for a log-probability scorer, with a rule the test knows."""

    model, base_url, version = "local:shorter-is-likelier", None, None

    def score(self, conversation, reply: str) -> Scored:
        return Scored(-len(reply) / 100, {"mean": -len(reply) / 100})


def test_a_likelihood_is_shown_as_one_with_lengths_and_too_few_items(tmp_path, monkeypatch):
    db = tmp_path / "why.duckdb"
    items = preference.sample(misconceptions.read(), 3)
    source = misconceptions.source_name(misconceptions.BUILTIN)
    preference.PreferenceTest(Store(db), "logprob", source, scorer=ShorterIsLikelier()).run(items)
    at = open_page(db, monkeypatch, "why")
    ok(at)
    shown = markup(at)
    assert "Log-probabilities are no preference model" in shown
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert "likelier under the model" in spec["layout"]["yaxis"]["title"]["text"]
    reported = spec["data"][-1]
    assert reported["name"] == "as reported (Claude 2 PM)" and reported["xaxis"] == "x2"
    assert reported["marker"]["color"] == ["#AAAAAA", "#AAAAAA"]  # three items: too few to compare
    assert all(
        "too few items to compare" in a["text"] for a in spec["layout"]["annotations"] if "2 PM" in a["text"]
    )
    assert "Too few items to compare with the paper" in at.warning[0].value
    mean = sum(len(p.sycophantic) for p in items) / 3
    assert f"sycophantic replies {mean:.0f} characters on average" in shown
