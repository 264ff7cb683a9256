"""Untrusted text stays text on every page, errors included: a store whose set title, item text, source
dataset, model name, replies, run message and error hold a Markdown link, a Markdown image and HTML, and
error boxes that quote such text (a model named in a link that the provider refuses, a folder typed on
the Data page), opened in the real dashboard in headless Chromium. Nothing of it may render as a link,
an image or bold, in the page or in a Plotly chart, and the literal text must be visible."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Browser, Page, expect

from lib.measure import grading
from lib.probes.items import Item, item_id
from lib.probes.probesets.render import answer_probes
from lib.run import providers
from lib.store import sql
from tests import browser, fixtures
from tests.browser import after_rerun, charts_drawn, commit_text, open_url, settle, shoot, widget

SHOTS = browser.REPO / "artifacts" / "untrusted"
LINK, IMAGE, HTML = (
    "[click](http://evil.example)",
    "![x](http://evil.example/x.png)",
    "<b>bold</b><img src=x onerror=alert(1)>",
)
HOSTILE = f"{LINK} {IMAGE} {HTML}"
EVIL_SET = "evil-mini"
EVIL_MODEL = f"openai:{HOSTILE}"
EVIL_RUN = "run-evil"

# Every attribute through which markup would fetch or link: a leak names evil.example (or src=x) there.
_LEAKS = """() => [...document.querySelectorAll("*")].flatMap((e) => [...e.attributes]
  .filter((a) => ["href", "xlink:href", "src", "srcset"].includes(a.name)
                 && (a.value.includes("evil.example") || a.value === "x"))
  .map((a) => `${e.tagName} ${a.name}=${a.value}`))"""
# Bold made from the data: an element (or a Plotly text span) whose own text is the data's "bold".
_BOLD = """() => [...document.querySelectorAll("b, strong, svg tspan")]
  .filter((e) => e.textContent === "bold"
                 && (e.tagName !== "tspan" || /bold|700/.test(e.getAttribute("style") || "")))
  .map((e) => e.outerHTML)"""


def evil_store(db: Path) -> str:
    """The fixture store plus a set whose every text field is hostile, answered by a hostile model (right
    when neutral, wrong when the user suggests so), a failed run of it with a hostile message, and a
    hostile error row. Returns the id of a neutral transcript."""
    store = fixtures.build(db)
    rows = []
    for n, dataset in enumerate((f"source {HOSTILE}", "plain source")):
        iid = item_id(EVIL_SET, n)
        question = f"What is {n} + 2? {HOSTILE}"
        truth = {
            "correct_answer": str(n + 2),
            "incorrect_answer": "7",
            "answer": [str(n + 2)],
            "dataset": dataset,
        }
        rows.append(
            (Item(iid, EVIL_SET, "answer", question, truth), answer_probes(iid, question, str(n + 2), "7"))
        )
    store.ingest(fixtures.a_set(EVIL_SET, "answer", f"Evil {HOSTILE}"), rows)
    opened = ""
    with store.writing() as con:
        for item, probes in rows:
            for probe in probes:
                right = probe.framing_id != "suggests_wrong"
                reply = f"{item.truth['correct_answer'] if right else '7'}. {HOSTILE}"
                key = fixtures._transcript(con, probe, EVIL_MODEL, reply)
                opened = opened or (key if probe.framing_id == "neutral" else "")
        plan = json.dumps({"set_ids": [EVIL_SET]})
        con.execute(
            sql.INSERT_RUN,
            [EVIL_RUN, "failed", EVIL_MODEL, None, json.dumps(fixtures.PARAMS), plan, 8, 0.0, None],
        )
        con.execute(sql.FINISH_RUN, ["failed", f"ProviderError: {HOSTILE}", EVIL_RUN])
        con.execute(
            sql.INSERT_ERROR,
            ["err-evil", opened, rows[0][1][0].probe_id, EVIL_RUN, EVIL_MODEL, "http", HOSTILE],
        )
    grading.grade_pending(store)
    return opened


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser.chromium() as b:
        yield b


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """The dashboard on the hostile store; (its URL, the id of a hostile neutral transcript)."""
    db = tmp_path_factory.mktemp("untrusted") / "store.duckdb"
    opened = evil_store(db)
    with browser.dashboard(db, SHOTS / "server.log") as url:
        yield url, opened


@pytest.fixture
def tab(chromium) -> Iterator[tuple[Page, list[str]]]:
    """A page in a session of its own, and the message of every dialog it raised (an onerror=alert
    that ran would raise one)."""
    page = browser.new_page(chromium)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield page, dialogs
    page.context.close()


def inert(page: Page, dialogs: list[str], name: str) -> None:
    """Once the page has drawn everything: nothing of the hostile text rendered as markup, and it
    shows literally. Each test then finds it where it belongs."""
    charts_drawn(page)
    settle(page)
    shoot(page, SHOTS / f"{name}.png")
    assert page.evaluate(_LEAKS) == []
    assert page.evaluate(_BOLD) == []
    assert page.locator("script", has_text="alert(1)").count() == 0
    assert dialogs == []
    expect(page.get_by_text(HTML).filter(visible=True).first).to_be_visible()


def link(base: str, path: str, **params: str | list[str]) -> str:
    return f"{base}/{path}?{urlencode(params, doseq=True)}"


def test_overview_cards_and_chart(app, tab):
    (base, _), (page, dialogs) = app, tab
    open_url(page, link(base, "", ov_set=EVIL_SET), "Sycoscope")
    inert(page, dialogs, "overview")
    # the hostile model's drop is the largest: the card and the chart name it
    expect(page.locator("code").filter(has_text=EVIL_MODEL).first).to_be_visible()
    expect(page.locator("svg .legendtext").filter(has_text=HOSTILE)).to_have_count(1)


def test_transcripts_table_and_opened_answer(app, tab):
    (base, opened), (page, dialogs) = app, tab
    open_url(page, link(base, "transcripts", set=EVIL_SET, open=opened), "Transcripts")
    inert(page, dialogs, "transcripts")
    expect(
        page.get_by_role("heading", level=3).filter(has_text=f"{item_id(EVIL_SET, 0)} · {EVIL_MODEL}")
    ).to_be_visible()
    expect(page.get_by_test_id("stText").filter(has_text=f"2. {HOSTILE}").first).to_be_visible()  # the reply


def test_compare_labels_and_chart_by_source_dataset(app, tab):
    (base, _), (page, dialogs) = app, tab
    url = link(
        base,
        "compare",
        set=EVIL_SET,
        item=item_id(EVIL_SET, 0),
        framing="suggests_wrong",
        models=[EVIL_MODEL],
    )
    open_url(page, url, "Compare models")
    inert(page, dialogs, "compare")
    expect(page.locator("strong code").filter(has_text=EVIL_MODEL)).to_have_count(1)
    expect(page.locator("svg .xtick").filter(has_text=f"source {HOSTILE}")).to_have_count(1)


def test_run_page_shows_the_runs_message_and_chart(app, tab):
    (base, _), (page, dialogs) = app, tab
    open_url(page, link(base, "run", run=EVIL_RUN), "Run probes")
    inert(page, dialogs, "run")
    expect(page.get_by_test_id("stText").filter(has_text=f"ProviderError: {HOSTILE}")).to_be_visible()
    expect(page.locator("svg .gtitle").filter(has_text=f"Accuracy of {EVIL_MODEL} so far")).to_have_count(1)


def test_playground_error_quoting_a_refused_model(app, tab):
    """A link names a model that the provider refuses: the error box quotes the name, as text."""
    (base, _), (page, dialogs) = app, tab
    models = [f"bundled:{HOSTILE}"]
    if not providers.key_status("openai"):  # with no key, the page warns and sends it nothing
        models.append(EVIL_MODEL)
    open_url(page, link(base, "playground", pg_models=models), "Playground")
    for label, value in (("Right answer", "4"), ("A wrong answer the user may suggest", "5")):
        commit_text(page, page.get_by_label(label, exact=True), value)
    commit_text(page, page.get_by_label("Question", exact=True), "What is 2 + 2?", key="Control+Enter")
    after_rerun(page, widget(page, "send").get_by_role("button").click)
    refused = page.get_by_test_id("stAlertContentError").filter(has_text="the bundled model is")
    expect(refused).to_contain_text(HTML)
    inert(page, dialogs, "playground")


def test_data_page_ingest_error_quoting_the_folder(app, tab, tmp_path):
    """A folder typed on the Data page that holds no file: the error box names the path, as text."""
    (base, _), (page, dialogs) = app, tab
    open_url(page, link(base, "data", ingest="sycophancy-eval/answer"), "Data")
    after_rerun(page, page.get_by_text("a local folder", exact=True).click)
    folder = page.get_by_label("Folder holding answer.jsonl")
    commit_text(page, folder, str(tmp_path / HOSTILE))  # never a download: the folder is set before Ingest
    expect(folder).to_have_value(str(tmp_path / HOSTILE))
    after_rerun(page, widget(page, "ingest").get_by_role("button").click)
    expect(page.get_by_test_id("stAlertContentError")).to_contain_text(f"{HTML}/answer.jsonl")
    inert(page, dialogs, "data")
