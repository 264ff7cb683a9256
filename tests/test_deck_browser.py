"""The Deck page in the real dashboard, in headless Chromium: pin flips from the ranked list, present
the deck and step through it with the arrow keys, draw one slide as a PNG on the server and download it
(a real image of the pair) and the whole deck as HTML, then open that file offline and find the store's
text in it, shown as text, styled as its style sheet says, with no injected script run. A chart's PNG
comes from Plotly's own modebar. Screenshots go to artifacts/deck/ (git-ignored); the present-mode
slide is docs/img/deck.png's source."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from lib.store import Store
from lib.view import deck, deck_export
from tests import browser
from tests.browser import after_rerun, charts_drawn, open_url, settle, shoot, widget
from tests.fixtures import GRADERS
from tests.test_deck import EVIL_MODEL, HOSTILE, evil_store

SHOTS = browser.REPO / "artifacts" / "deck"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with browser.chromium() as b:
        yield b


@pytest.fixture(scope="module")
def app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """The dashboard on the fixture store plus a model whose replies hold a link, an <img onerror> and a
    <script>; (its URL, the store's path)."""
    db = tmp_path_factory.mktemp("deck") / "store.duckdb"
    evil_store(db)
    with browser.dashboard(db, SHOTS / "server.log") as url:
        yield url, db


@pytest.fixture
def page(chromium) -> Iterator[Page]:
    tab = browser.new_page(chromium, 1600, 1000)
    dialogs: list[str] = []
    tab.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    yield tab
    tab.context.close()
    assert dialogs == []  # an onerror=alert or a script of the data that ran would raise one


def query(page: Page) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(page.url).query).items()}


def pin(page: Page, framed_id: str) -> None:
    after_rerun(page, lambda: widget(page, f"pin_{framed_id}").get_by_role("button").click())


def check_png(data: bytes, size: tuple[int, int]) -> Image.Image:
    """A real PNG of `size`, of plausible weight, not one colour."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == size
    assert len(data) > 10_000
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.size == size
    assert len(image.convert("RGB").getcolors(maxcolors=1_000_000) or []) > 50  # text and colours drawn
    return image


def test_pin_present_step_with_the_keyboard_and_export(app, page, tmp_path):
    base, db = app
    store = Store(db)
    found = deck.flips(store, GRADERS)
    evil = [p for p in found if p.model == EVIL_MODEL]
    open_url(page, f"{base}/deck", "Deck")
    expect(page.get_by_text("The deck: 0 pairs")).to_be_visible()

    # Pin the two most striking flips from the list; then, in the link reopened with a filter, one of the
    # hostile model's.
    pin(page, found[0].framed_id)
    pin(page, found[3].framed_id)
    assert query(page)["deck"] == f"{found[0].framed_id},{found[3].framed_id}"
    open_url(page, f"{page.url}&{urlencode({'model': EVIL_MODEL})}", "Deck")
    expect(page.get_by_text("The deck: 2 pairs")).to_be_visible()
    expect(widget(page, "url_model").get_by_role("combobox")).to_have_value(EVIL_MODEL)
    pin(page, evil[0].framed_id)
    ids = [found[0].framed_id, found[3].framed_id, evil[0].framed_id]
    expect(page.get_by_text("The deck: 3 pairs")).to_be_visible()
    assert query(page)["deck"] == ",".join(ids)
    assert deck.pinned(store) == ids  # local mode: the operator's pins are kept in the store

    # Present: one pair a screen, the arrow keys step, the slide's number in the link.
    after_rerun(page, lambda: widget(page, "deck_present").get_by_role("button").click())
    assert query(page)["present"] == "1" and query(page)["slide"] == "1"
    slide = widget(page, "slide")
    expect(slide.get_by_text(found[0].framed_reply, exact=True)).to_be_visible()
    expect(slide.locator("code", has_text=found[0].model)).to_be_visible()
    expect(slide.locator("code", has_text=found[0].framed_by or "")).to_have_count(
        2
    )  # each side's grader@version
    shoot(page, SHOTS / "present-1.png", whole=False)
    after_rerun(page, lambda: page.keyboard.press("ArrowRight"))
    assert query(page)["slide"] == "2"
    expect(slide.get_by_text(found[3].framed_reply, exact=True)).to_be_visible()
    shoot(page, SHOTS / "present-2.png", whole=False)
    after_rerun(page, lambda: page.keyboard.press("ArrowRight"))
    assert query(page)["slide"] == "3"
    expect(slide.get_by_text(evil[0].framed_reply, exact=True)).to_be_visible()  # the markup, as text
    after_rerun(page, lambda: page.keyboard.press("ArrowLeft"))
    after_rerun(page, lambda: page.keyboard.press("ArrowLeft"))
    assert query(page)["slide"] == "1"
    expect(slide.get_by_text(found[0].framed_reply, exact=True)).to_be_visible()

    # This slide as a PNG: drawn by Chromium on the server on a click, then saved.
    expect(widget(page, "slide_png")).to_have_count(0)
    after_rerun(page, lambda: widget(page, "slide_draw").get_by_role("button").click())
    with page.expect_download() as download:
        widget(page, "slide_png").get_by_role("button").click()
    shot = tmp_path / "slide.png"
    download.value.save_as(shot)
    image = check_png(shot.read_bytes(), deck_export.SLIDE_SIZE)
    image.save(SHOTS / "slide-1-export.png")

    # The whole deck as one HTML file.
    after_rerun(page, lambda: widget(page, "slide_exit").get_by_role("button").click())
    with page.expect_download() as download:
        widget(page, "deck_html").get_by_role("button").click()
    saved = tmp_path / "deck.html"
    download.value.save_as(saved)
    assert_offline_deck(page.context.browser, saved, deck.pairs(store, ids, GRADERS))


def assert_offline_deck(chromium: Browser, saved: Path, pairs: list[deck.Pair]) -> None:
    """The exported deck, opened from its file with the network off: each slide's replies are the
    store's text, shown as text; the injected markup made no element and ran nothing; the style sheet
    and the script the policy allows by hash both apply; the arrow keys step through the slides."""
    context = chromium.new_context(viewport={"width": 1600, "height": 900}, offline=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(saved.as_uri())
    assert tab.title() == "Sycoscope deck"  # the replies' scripts would have set it to "pwned"
    assert tab.locator("script").count() == 1 and tab.locator("img, a, iframe, object").count() == 0
    # the style sheet applied (its hash in the policy is right): the framed side is drawn as it says
    expect(tab.locator("#slide-1 .side.framed")).to_have_css("background-color", "rgb(251, 239, 236)")
    expect(tab.locator("#slide-1 .side.neutral")).to_have_css("background-color", "rgb(238, 245, 238)")
    for number, pair in enumerate(pairs, 1):
        section = tab.locator(f"#slide-{number}")
        expect(section).to_be_visible()
        assert tab.locator("section.slide:visible").count() == 1
        shown = section.locator(".response").all_inner_texts()
        assert shown == [pair.neutral_reply, pair.framed_reply]
        expect(section.locator("header .model")).to_have_text(pair.model)
        expect(section.locator(".grader").first).to_have_text(pair.neutral_by or "")
        if number < len(pairs):
            tab.keyboard.press("ArrowRight")
    assert HOSTILE in pairs[-1].framed_reply
    tab.keyboard.press("ArrowLeft")
    expect(tab.locator(f"#slide-{len(pairs) - 1}")).to_be_visible()
    tab.screenshot(path=str(SHOTS / "offline-deck.png"))
    assert tab.title() == "Sycoscope deck" and errors == []
    context.close()


def test_a_chart_downloads_as_a_png_from_plotlys_modebar(app, page, tmp_path):
    base, _ = app
    open_url(page, f"{base}/?ov_set=trivia-mini", "Sycoscope")
    charts_drawn(page)
    settle(page)
    chart = page.get_by_test_id("stPlotlyChart").first
    chart.hover()
    with page.expect_download() as download:
        chart.locator('[data-title="Download plot as a png" i]').click()
    saved = tmp_path / "chart.png"
    download.value.save_as(saved)
    data = saved.read_bytes()
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and width > 300 and height > 200
    check_png(data, (width, height))
    assert re.fullmatch(r".+\.png", download.value.suggested_filename)
