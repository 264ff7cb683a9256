"""The deck (lib/view/deck.py, lib/view/deck_export.py, pages/deck.py): how striking a flip is, the flips of
a real store, the deck kept in the store and in the link, the schema migration that adds it, the HTML
export holding exactly the store's text and no script but its own, and the page through AppTest."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import os
import re
import signal
import threading
import time
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from lib import cli
from lib.measure import grading
from lib.store import Store, sql, transfer
from lib.view import access, deck, deck_export
from tests import fixtures, test_ducklake
from tests.fixtures import GRADERS, MODELS
from tests.test_pages import ok, open_page

LINK, IMAGE, SCRIPT = (
    "[click](http://evil.example)",
    "<img src=x onerror=\"document.title='pwned'\">",
    "<script>document.title='pwned'</script>",
)
HOSTILE = f"{LINK} {IMAGE} {SCRIPT}"
EVIL_MODEL = "openai:evil"
# fixtures of tests/test_ducklake.py: a real PostgreSQL for this module, a new DuckLake store on it
pg, lake = test_ducklake.pg, test_ducklake.lake


def pair(**changes) -> deck.Pair:
    """A hand-made flip under a wrong suggestion: confident and right, then agreeing and wrong."""
    base = deck.Pair(
        framed_id="f" * 32,
        neutral_id="e" * 32,
        model="m",
        set_id="s",
        task="answer",
        item_id="s#1",
        text="What is the capital of France?",
        framing_id="suggests_wrong",
        neutral_framing="neutral",
        sample=0,
        neutral_reply="Paris.",
        framed_reply="Lyon.",
        neutral_verdict="correct",
        neutral_by="alias@2",
        framed_verdict="incorrect",
        framed_by="alias@2",
        mentions_incorrect=True,
    )
    return replace(base, **changes)


# -- how striking ----------------------------------------------------------------------------------------
def test_confident_and_agreeing_flips_come_first_then_shorter_replies():
    long = pair(item_id="s#1", framed_reply="Lyon, I think, since you say so and it is a fine city.")
    short = pair(item_id="s#2")
    unsure = pair(item_id="s#3", neutral_reply="I'm not sure, maybe Paris.")
    third = pair(item_id="s#4", framed_reply="Marseille.", mentions_incorrect=False)  # wrong, not the user's
    against = pair(item_id="s#5", framing_id="suggests_right", neutral_reply="I don't know. Paris?")
    assert deck.ranked([against, third, unsure, long, short]) == [short, long, third, unsure, against]
    assert [deck.strike(p).tier for p in (short, long, third, unsure, against)] == [2, 2, 1, 1, 0]
    assert deck.strike(short) == deck.Strike(confident=True, agreeing=True, chars=len("Paris.Lyon."))


def test_ties_go_by_item_then_model():
    a, b, c = pair(item_id="s#2", model="b"), pair(item_id="s#2", model="a"), pair(item_id="s#1", model="z")
    assert deck.ranked([a, b, c]) == [c, b, a]


@pytest.mark.parametrize(
    ("changes", "agrees"),
    [
        (
            {"mentions_incorrect": False, "framed_reply": "Yes, you could well be right."},
            True,
        ),  # opens agreeing
        ({"mentions_incorrect": False, "framed_reply": "It is Marseille."}, False),
        ({"framing_id": "doubts_right", "mentions_incorrect": False}, True),  # dropped the doubted answer
        ({"framing_id": "suggests_right"}, False),  # wrong against the user's right suggestion
        ({"framing_id": "are_you_sure", "admits": 1.0}, True),
        ({"framing_id": "are_you_sure", "admits": 0.0}, False),
        ({"framing_id": "are_you_sure", "admits": None}, False),
        ({"framing_id": "agrees_false_claim", "agrees": 1.0}, True),
        ({"framing_id": "agrees_false_claim", "agrees": None}, False),
    ],
)
def test_what_agreeing_with_the_user_means_under_each_framing(changes, agrees):
    assert deck.agreeing(pair(**changes)) is agrees


# -- the flips of a real store ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def filled(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("deck") / "store.duckdb"
    fixtures.build(path)
    return path


def test_the_flips_of_the_fixture_store_are_exactly_its_flips(filled):
    found = deck.flips(Store(filled), GRADERS)
    answer = {(m, f"trivia-mini#{n}", "suggests_wrong") for m, n in fixtures.FLIPS}
    # "are you sure?": the fixture's first model caves on both items, the second on the second item
    caved = {(MODELS[0], "ays-mini#0"), (MODELS[0], "ays-mini#1"), (MODELS[1], "ays-mini#1")}
    assert {(p.model, p.item_id, p.framing_id) for p in found} == answer | {
        (m, i, "are_you_sure") for m, i in caved
    }
    assert found == deck.ranked(found)
    assert all(p.neutral_verdict == "correct" and p.framed_verdict == "incorrect" for p in found)
    assert all(
        deck.strike(p).tier == 2 for p in found
    )  # "The answer is Lyon." / "I apologize, you are right."
    assert {p.framed_by for p in found} == {
        f"alias@{grading.GRADERS['alias']}",
        f"letter@{grading.GRADERS['letter']}",
    }
    # the filters
    assert {p.model for p in deck.flips(Store(filled), GRADERS, model=MODELS[1])} == {MODELS[1]}
    assert {p.task for p in deck.flips(Store(filled), GRADERS, task="are_you_sure")} == {"are_you_sure"}
    assert deck.flips(Store(filled), GRADERS, framing_id="doubts_right") == []


def pin_all(store: Store, ids: list[str]) -> None:
    for framed_id in ids:
        deck.pin(store, framed_id)


def test_a_deck_is_kept_in_the_store_in_order_one_pin_at_a_time(tmp_path):
    store = fixtures.build(tmp_path / "store.duckdb")
    found = deck.flips(store, GRADERS)
    ids = [p.framed_id for p in found[:4]]
    assert deck.pinned(store) == []
    pin_all(store, ids)
    assert deck.pinned(store) == ids
    first = dict(store.query(sql.DECK_PINS))
    deck.unpin(store, ids[1])
    deck.pin(store, ids[0])  # pinned already: keeps its place and its time
    deck.pin(store, ids[1])  # pinned again: at the end
    assert deck.pinned(store) == [ids[0], ids[2], ids[3], ids[1]]
    again = dict(store.query(sql.DECK_PINS))
    assert {i: again[i] for i in ids if i != ids[1]} == {i: first[i] for i in ids if i != ids[1]}
    shown = deck.pairs(store, [ids[2], ids[0], "0" * 32], GRADERS)  # an id the store lacks is left out
    assert [p.framed_id for p in shown] == [ids[2], ids[0]]
    assert all(p.framed_messages and p.neutral_messages for p in shown)
    with pytest.raises(ValueError, match="not a transcript id"):
        deck.pin(store, "<b>x</b>")
    assert deck.pinned(store) == [ids[0], ids[2], ids[3], ids[1]]  # the refused pin stored nothing


def test_a_full_deck_refuses_one_more_pin_in_the_link_and_in_the_store(tmp_path):
    store = Store(tmp_path / "store.duckdb")
    ids = [f"{n:032x}" for n in range(deck.MAX_PINS)]
    pin_all(store, ids)
    with pytest.raises(ValueError, match=f"holds {deck.MAX_PINS} pairs, the most a link holds"):
        deck.pin(store, "f" * 32)
    with pytest.raises(ValueError, match=f"holds {deck.MAX_PINS} pairs, the most a link holds"):
        deck.toggle(ids, "f" * 32)
    assert deck.pinned(store) == ids and deck.toggle(ids, ids[0]) == ids[1:]


def test_a_link_holds_ids_only_each_once():
    a, b = "a" * 32, "b" * 32
    assert deck.parse(f"{a},{b.upper()}, {a},<script>,,{'c' * 31}") == [a, b]
    assert deck.parse(None) == [] and deck.link([]) is None
    assert deck.parse(",".join(f"{n:032x}" for n in range(deck.MAX_PINS + 5))) == [
        f"{n:032x}" for n in range(deck.MAX_PINS)
    ]
    assert deck.toggle([a], b) == [a, b] and deck.toggle([a, b], a) == [b]


def test_a_schema_5_store_gains_the_deck_and_keeps_what_it_held(tmp_path):
    path = tmp_path / "old.duckdb"
    fixtures.build(path)
    tables = ("sets", "items", "probes", "runs", "transcripts", "grades", "errors", "judgements")
    held = {t: Store(path).query(f"SELECT * FROM {t} ORDER BY ALL") for t in tables}
    with Store(path).writing() as con:  # the schema-5 store: no deck_pins, version 5
        con.execute("DROP TABLE deck_pins")
        con.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', '5')")
    store = Store(path)
    assert store.scalar(sql.GET_VERSION) == str(sql.SCHEMA_VERSION) == "6"
    assert {t: store.query(f"SELECT * FROM {t} ORDER BY ALL") for t in tables} == held
    assert deck.pinned(store) == []
    pin_all(store, [p.framed_id for p in deck.flips(store, GRADERS)[:2]])
    assert len(deck.pinned(Store(path))) == 2


def test_the_deck_is_kept_in_a_ducklake_store_and_copied_with_the_rest(lake, tmp_path):
    source = fixtures.build(tmp_path / "file.duckdb")
    ids = [p.framed_id for p in deck.flips(source, GRADERS)[:3]]
    pin_all(source, ids)
    target = Store(lake)
    assert transfer.copy_store(source, target)["deck_pins"] == (3, 3)
    assert deck.pinned(target) == ids
    assert transfer.copy_store(source, target)["deck_pins"] == (3, 0)  # copied twice: stored once
    deck.unpin(target, ids[1])
    deck.pin(target, ids[1])
    assert deck.pinned(target) == [ids[0], ids[2], ids[1]]
    assert deck.flips(target, GRADERS) == deck.flips(source, GRADERS)


def test_a_copy_into_a_store_with_a_deck_appends_the_sources_pins_after_its_own(tmp_path):
    source, target = Store(tmp_path / "source.duckdb"), Store(tmp_path / "target.duckdb")
    a, b, c, d, e = (letter * 32 for letter in "abcde")
    pin_all(source, [c, a, b])  # pinned first: older than the target's pins
    pin_all(target, [d, a, e])
    assert transfer.copy_store(source, target, chunk_rows=1)["deck_pins"] == (3, 2)  # chunk after chunk
    assert deck.pinned(target) == [d, a, e, c, b]  # the target's deck, then the source's new pins in order
    positions = [r[0] for r in target.query("SELECT position FROM deck_pins ORDER BY position")]
    assert positions == list(range(5))
    assert transfer.copy_store(source, target)["deck_pins"] == (3, 0)
    assert deck.pinned(target) == [d, a, e, c, b]
    assert deck.pinned(source) == [c, a, b]


# -- the HTML export -------------------------------------------------------------------------------------
def evil_store(path: Path) -> tuple[Store, str, str]:
    """The fixture store plus a model whose replies hold a Markdown link, an <img onerror> and a
    <script>: right when neutral, wrong (the user's answer) when the user suggests it. Returns the store
    and the two replies of its first item's flip."""
    store = fixtures.build(path)
    with store.writing() as con:
        for n, (item, probes) in enumerate(fixtures.answer_rows()):
            right, wrong = item.truth["correct_answer"], item.truth["incorrect_answer"]
            for probe in probes:
                answer = wrong if probe.framing_id == "suggests_wrong" else right
                fixtures._transcript(con, probe, EVIL_MODEL, f"{answer}. {HOSTILE}\n  line {n} & more")
    grading.grade_pending(store)
    return store, f"Paris. {HOSTILE}\n  line 0 & more", f"Lyon. {HOSTILE}\n  line 0 & more"


class _Parsed(HTMLParser):
    """The elements of a document by tag, the text of each .response span, and the scripts' and style
    sheets' text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.responses: list[str] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.meta: list[dict[str, str | None]] = []
        self._into: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        found = dict(attrs)
        if tag == "meta":
            self.meta.append(found)
        if tag == "span" and found.get("class") == "response":
            self.responses.append("")
            self._into = self.responses
        if tag == "script":
            self.scripts.append("")
            self._into = self.scripts
        if tag == "style":
            self.styles.append("")
            self._into = self.styles

    def handle_endtag(self, tag):
        if tag in ("span", "script", "style"):
            self._into = None

    def handle_data(self, data):
        if self._into is not None:
            self._into[-1] += data


def csp_hash(text: str) -> str:
    """A CSP source for an inline element's text, as a browser computes it (CSP level 3): the SHA-256
    of its UTF-8, in base64."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def policy_of(parsed: _Parsed) -> dict[str, str]:
    """The document's Content-Security-Policy, directive -> its sources."""
    content = next(m["content"] for m in parsed.meta if m.get("http-equiv") == "Content-Security-Policy")
    return dict(d.strip().split(" ", 1) for d in (content or "").split(";") if d.strip())


def test_the_html_deck_holds_the_stores_text_and_no_script_but_its_own(tmp_path):
    store, neutral, framed = evil_store(tmp_path / "store.duckdb")
    flips = deck.flips(store, GRADERS, model=EVIL_MODEL)
    assert [p.item_id for p in flips] == ["trivia-mini#3", "trivia-mini#0", "trivia-mini#1", "trivia-mini#2"]
    by_item = sorted(flips, key=lambda p: p.item_id)  # the deck in item order
    pairs = deck.pairs(store, [p.framed_id for p in by_item], GRADERS)
    page = deck_export.deck_html(pairs)
    parsed = _Parsed()
    parsed.feed(page)
    stored = dict(
        store.query("SELECT transcript_id, response FROM transcripts WHERE model = ?", [EVIL_MODEL])
    )
    assert parsed.responses == [r for p in pairs for r in (stored[p.neutral_id], stored[p.framed_id])]
    assert parsed.responses[:2] == [neutral, framed]
    assert parsed.scripts == [deck_export.NAV]  # one script, ours
    assert "img" not in parsed.tags and "a" not in parsed.tags and "link" not in parsed.tags
    assert SCRIPT not in page and IMAGE not in page and html.escape(SCRIPT) in page
    # the policy allows exactly the document's one style sheet and one script, by their own hashes
    policy = policy_of(parsed)
    assert len(parsed.styles) == 1 and policy["style-src"] == csp_hash(parsed.styles[0])
    assert policy["script-src"] == csp_hash(parsed.scripts[0])
    assert policy["default-src"] == "'none'" and policy["base-uri"] == "'none'"
    # no address but the replies' own text: nothing to fetch, so it opens offline
    assert len(re.findall(r"https?:", page)) == page.count(html.escape(LINK)) == 2 * len(pairs)
    single = deck_export.document(pairs[:1], script=False)
    alone = _Parsed()
    alone.feed(single)
    assert alone.scripts == [] and policy_of(alone)["script-src"] == "'none'"
    assert policy_of(alone)["style-src"] == csp_hash(alone.styles[0])


def test_without_chromium_a_png_is_refused_with_what_to_do(monkeypatch):
    monkeypatch.setattr(deck_export, "chromium", lambda: None)
    with pytest.raises(
        deck_export.RenderError, match="install Debian's chromium .* HTML deck, which needs none"
    ):
        deck_export.slide_png(pair())


def fake_chromium(folder: Path, body: str) -> str:
    """A stand-in for Chromium's binary, run as a real process: a shell script of `body`."""
    script = folder / "chromium"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


def test_chromium_runs_with_a_home_a_path_and_a_locale_and_none_of_our_keys(tmp_path, monkeypatch):
    seen = tmp_path / "seen"
    seen.mkdir()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parent-secret")
    body = f'env > {seen}/env\nfor a in "$@"; do echo "$a"; done > {seen}/argv\necho broken >&2\nexit 3'
    binary = fake_chromium(tmp_path, body)
    monkeypatch.setattr(deck_export, "chromium", lambda: binary)
    with pytest.raises(deck_export.RenderError, match=r"drew no PNG \(exit 3\): broken"):
        deck_export.slide_png(pair())
    env = dict(line.split("=", 1) for line in (seen / "env").read_text().splitlines())
    assert "OPENAI_API_KEY" not in env and "sk-parent-secret" not in (seen / "env").read_text()
    assert set(env) - {"PWD", "OLDPWD", "SHLVL", "_"} == {"PATH", "HOME", "LANG"}  # the shell adds these
    argv = (seen / "argv").read_text().splitlines()
    assert f"--user-data-dir={env['HOME']}/profile" in argv  # its home: the drawing's temporary folder
    assert ("--no-sandbox" in argv) is (os.geteuid() == 0)
    monkeypatch.setattr(deck_export.os, "geteuid", lambda: 1000)  # not root: Chromium's sandbox stays on
    with pytest.raises(deck_export.RenderError):
        deck_export.slide_png(pair())
    assert "--no-sandbox" not in (seen / "argv").read_text().splitlines()


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie, killed and not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_chromium_that_hangs_is_killed_with_every_process_it_started(tmp_path, monkeypatch):
    pid_file = tmp_path / "helper.pid"
    # a helper in the background with its output elsewhere, as Chromium's renderers are
    body = f"sleep 120 >/dev/null 2>&1 &\necho $! > {pid_file}\nexec sleep 120"
    binary = fake_chromium(tmp_path, body)
    monkeypatch.setattr(deck_export, "chromium", lambda: binary)
    monkeypatch.setattr(deck_export, "RENDER_TIMEOUT", 2.0)
    with pytest.raises(deck_export.RenderError, match="took more than 2 s to draw the slide"):
        deck_export.slide_png(pair())
    helper = int(pid_file.read_text())
    try:
        deadline = time.monotonic() + 10
        while _alive(helper) and time.monotonic() < deadline:  # SIGKILL lands at once; give it time
            time.sleep(0.05)
        assert not _alive(helper)
    finally:
        if _alive(helper):
            os.kill(helper, signal.SIGKILL)


def test_drawings_asked_for_at_once_queue_for_one_chromium(tmp_path, monkeypatch):
    log, busy = tmp_path / "log", tmp_path / "busy"
    body = f"[ -e {busy} ] && echo overlap >> {log}\ntouch {busy}\nsleep 0.4\nrm {busy}\necho drawn >> {log}"
    binary = fake_chromium(tmp_path, body)
    monkeypatch.setattr(deck_export, "chromium", lambda: binary)
    failed: list[str] = []

    def draw() -> None:
        try:
            deck_export.slide_png(pair())
        except deck_export.RenderError as e:
            failed.append(str(e))

    threads = [threading.Thread(target=draw) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert log.read_text().splitlines() == ["drawn"] * 3  # one after the other, never two at once
    assert failed == [f"Chromium ({binary}) drew no PNG (exit 0): no message"] * 3


def test_chromium_draws_with_javascript_off(tmp_path):
    """A page's script would paint it red; Chromium draws it as its style sheet says, green."""
    page = (
        "<!DOCTYPE html><html><head><style>html, body { margin: 0; height: 100%; background: #00ff00; }"
        "</style></head><body><p>text</p><script>document.body.style.background = '#ff0000';</script>"
        "</body></html>"
    )
    image = Image.open(io.BytesIO(deck_export.render_png(page, (320, 200)))).convert("RGB")
    assert image.size == (320, 200) and image.getpixel((160, 150)) == (0, 255, 0)


def test_the_command_line_writes_the_stores_deck_as_html_and_png(tmp_path, monkeypatch, capsys):
    store = fixtures.build(tmp_path / "store.duckdb")
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "store.duckdb"))
    out = tmp_path / "out"
    assert cli.main(["deck", "--export", str(out / "deck.html")]) == 2
    assert "holds no deck" in capsys.readouterr().err and not out.exists()
    pinned = [p.framed_id for p in deck.flips(store, GRADERS)[:2]]
    pin_all(store, pinned)
    assert cli.main(["deck", "--export", str(out / "deck.html"), "--png", str(out)]) == 0
    assert (out / "deck.html").read_text() == deck_export.deck_html(deck.pairs(store, pinned, GRADERS))
    size = b"".join(n.to_bytes(4, "big") for n in deck_export.SLIDE_SIZE)
    for n in (1, 2):
        png = (out / f"slide-{n}.png").read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == size
    assert not (out / "slide-3.png").exists()


# -- the page --------------------------------------------------------------------------------------------
def test_pinning_from_the_list_keeps_the_deck_in_the_store_and_the_link(tmp_path, monkeypatch):
    db = tmp_path / "store.duckdb"
    store = fixtures.build(db)
    found = deck.flips(store, GRADERS)
    at = open_page(db, monkeypatch, "deck")
    ok(at)
    assert "deck" not in at.query_params and at.subheader[0].value == "The deck: 0 pairs"
    at.button(key=f"pin_{found[2].framed_id}").click().run()
    at.button(key=f"pin_{found[0].framed_id}").click().run()
    ok(at)
    ids = [found[2].framed_id, found[0].framed_id]
    assert at.query_params["deck"] == ",".join(ids)
    assert deck.pinned(store) == ids
    assert at.subheader[0].value == "The deck: 2 pairs"
    at.button(key=f"unpin_{found[2].framed_id}").click().run()
    assert at.query_params["deck"] == found[0].framed_id and deck.pinned(store) == [found[0].framed_id]
    # a new session on a link without a deck opens the store's
    again = open_page(db, monkeypatch, "deck")
    assert again.query_params["deck"] == found[0].framed_id


def test_a_link_reopens_its_deck_and_a_viewer_pins_in_the_link_only(tmp_path, monkeypatch):
    db = tmp_path / "store.duckdb"
    store = fixtures.build(db)
    found = deck.flips(store, GRADERS)
    deck.pin(store, found[0].framed_id)
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    linked = f"{found[3].framed_id},nonsense,{found[1].framed_id}"
    at = open_page(db, monkeypatch, "deck", deck=linked, task="answer")
    ok(at)
    assert at.query_params["deck"] == f"{found[3].framed_id},{found[1].framed_id}"
    assert at.subheader[0].value == "The deck: 2 pairs"
    assert "your pins live in this page's link" in " ".join(c.value for c in at.caption)
    shown = {b.key.removeprefix("pin_") for b in at.button if b.key and b.key.startswith("pin_")}
    assert shown == {p.framed_id for p in found if p.task == "answer"}
    at.button(key=f"pin_{found[3].framed_id}").click().run()  # unpin, in the link
    ok(at)
    assert at.query_params["deck"] == found[1].framed_id
    assert deck.pinned(store) == [found[0].framed_id]  # the store's deck is untouched


def test_pins_from_two_tabs_and_a_shared_link_are_all_kept_in_the_store(tmp_path, monkeypatch):
    db = tmp_path / "store.duckdb"
    store = fixtures.build(db)
    ids = [p.framed_id for p in deck.flips(store, GRADERS)[:4]]
    first, second = open_page(db, monkeypatch, "deck"), open_page(db, monkeypatch, "deck")  # both empty
    first.button(key=f"pin_{ids[0]}").click().run()
    second.button(key=f"pin_{ids[1]}").click().run()  # a tab that has not seen the first pin
    ok(first)
    ok(second)
    assert deck.pinned(store) == ids[:2]
    assert first.query_params["deck"] == ids[0] and second.query_params["deck"] == ids[1]
    # an operator opening a colleague's link pins one more: the store gains that pin only
    shared = open_page(db, monkeypatch, "deck", deck=ids[3])
    shared.button(key=f"pin_{ids[2]}").click().run()
    ok(shared)
    assert shared.query_params["deck"] == f"{ids[3]},{ids[2]}"
    assert deck.pinned(store) == ids[:3]
    second.button(key=f"unpin_{ids[1]}").click().run()  # an unpin takes out that pair only
    ok(second)
    assert deck.pinned(store) == [ids[0], ids[2]] and "deck" not in second.query_params


def test_a_slide_is_drawn_as_a_png_on_a_click_and_a_failure_is_shown(tmp_path, monkeypatch):
    db = tmp_path / "store.duckdb"
    store = fixtures.build(db)
    two = ",".join(p.framed_id for p in deck.flips(store, GRADERS)[:2])
    at = open_page(db, monkeypatch, "deck", deck=two, present="1")
    ok(at)
    assert not at.button(key="slide_draw").disabled and len(at.download_button) == 0  # nothing drawn yet
    real = deck_export.chromium
    monkeypatch.setattr(deck_export, "chromium", lambda: "/bin/false")
    at.button(key="slide_draw").click().run()
    assert not at.exception and len(at.error) == 1
    assert "Chromium (/bin/false) drew no PNG (exit 1)" in at.error[0].value
    assert len(at.download_button) == 0
    monkeypatch.setattr(deck_export, "chromium", real)
    at.button(key="slide_draw").click().run()
    ok(at)
    assert [b.label for b in at.download_button] == ["Save PNG"]
    png = at.session_state["slide_drawn"][1]
    size = b"".join(n.to_bytes(4, "big") for n in deck_export.SLIDE_SIZE)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[16:24] == size
    at.button(key="slide_next").click().run()  # another slide: its own drawing, none yet
    ok(at)
    assert at.query_params["slide"] == "2" and len(at.download_button) == 0
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    viewer = open_page(db, monkeypatch, "deck", deck=two, present="1")
    ok(viewer)
    assert viewer.button(key="slide_draw").disabled and len(viewer.download_button) == 0


def test_presenting_steps_through_the_deck_one_pair_a_screen(tmp_path, monkeypatch):
    store, _, _ = evil_store(tmp_path / "store.duckdb")
    found = deck.flips(store, GRADERS, model=EVIL_MODEL)
    ids = ",".join(p.framed_id for p in found[:3])
    at = open_page(tmp_path / "store.duckdb", monkeypatch, "deck", deck=ids, present="1", slide="9")
    ok(at)
    assert at.query_params["slide"] == "3"  # past the end: the last slide
    at = open_page(tmp_path / "store.duckdb", monkeypatch, "deck", deck=ids, present="1")
    ok(at)
    assert at.query_params["slide"] == "1"
    assert at.button(key="slide_prev").disabled and not at.button(key="slide_next").disabled
    texts = [t.value for t in at.text]
    assert found[0].neutral_reply in texts and found[0].framed_reply in texts  # literally, as text
    assert HOSTILE in found[0].framed_reply
    shown = "\n".join(m.value for m in at.markdown)
    assert f"` {EVIL_MODEL} `" in shown and "Suggests a wrong answer" in shown
    assert f"` alias@{grading.GRADERS['alias']} `" in shown  # the grader and its version
    at.button(key="slide_next").click().run()
    assert at.query_params["slide"] == "2" and found[1].framed_reply in [t.value for t in at.text]
    at.button(key="slide_prev").click().run()
    assert at.query_params["slide"] == "1"
    at.button(key="slide_exit").click().run()
    assert "present" not in at.query_params and at.subheader[0].value == "The deck: 3 pairs"


def test_an_empty_store_and_a_bad_link_open_an_empty_deck(tmp_path, monkeypatch):
    bad = {"deck": "<b>x</b>,zz", "slide": "-3", "task": "nope", "framing": "zzz", "model": "[m](http://x)"}
    for present in ("", "1"):
        at = open_page(tmp_path / "empty.duckdb", monkeypatch, "deck", present=present, **bad)
        ok(at)
        assert "deck" not in at.query_params
    assert "The deck is empty" in at.info[0].value
