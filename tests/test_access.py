"""Exposure chosen, not default: the dashboard listens on loopback unless told otherwise; served to a
room (viewer mode) it allows browsing, comparing and charts, and operator actions (runs, ingest,
exports, Playground sends) only to a session that entered the operator password. Through the pure
rules of lib/view/access.py, the real app in AppTest, and a real server in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from playwright.sync_api import expect
from streamlit import config as st_config

from lib.paths import REPO
from lib.run import keys, runner, servers
from lib.store import Store
from lib.view import access, browse
from tests import browser, fixtures
from tests.fake_vendor import FakeVendor
from tests.test_pages import markup, ok, open_page

PASSWORD = "correct horse battery staple"
VENDOR_KEY = "sk-openai-VENDOR-KEY-for-access-tests-0001"


# -- the rules ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "address", "expected"),
    [
        (None, "127.0.0.1", "local"),
        (None, "localhost", "local"),
        (None, "::1", "local"),
        (None, "127.0.1.1", "local"),
        (None, "0.0.0.0", "viewer"),
        (None, "192.168.1.20", "viewer"),
        (None, "lab.example.net", "viewer"),
        (None, None, "viewer"),  # no address: Streamlit listens on every interface
        (None, "", "viewer"),
        ("viewer", "127.0.0.1", "viewer"),
        (" Viewer ", None, "viewer"),
    ],
)
def test_the_mode_is_the_setting_else_follows_the_address(setting, address, expected):
    assert access.mode(setting, address) == (expected, None)


def test_an_unknown_mode_serves_as_viewer_and_says_so():
    current, problem = access.mode("open", "127.0.0.1")
    assert current == "viewer" and "SYCOSCOPE_MODE='open'" in problem


def test_local_mode_on_a_served_address_is_kept_with_a_warning():
    current, problem = access.mode("local", "0.0.0.0")
    assert current == "local" and "every visitor may run" in problem


def test_operator_may_act_in_local_mode_or_with_the_password():
    assert access.may_operate("local", None, None)
    assert not access.may_operate("viewer", None, None)
    assert not access.may_operate("viewer", "anything", None)  # no password set: no operator at all
    assert not access.may_operate("viewer", "", "")
    assert not access.may_operate("viewer", None, PASSWORD)
    assert not access.may_operate("viewer", PASSWORD[:-1], PASSWORD)
    assert not access.may_operate("viewer", PASSWORD + " ", PASSWORD)
    assert access.may_operate("viewer", PASSWORD, PASSWORD)


def test_the_operator_password_comes_from_the_environment_else_secrets(monkeypatch, tmp_path):
    monkeypatch.delenv(access.PASSWORD_ENV, raising=False)
    secrets = tmp_path / "secrets.toml"
    monkeypatch.setattr(keys, "SECRETS", secrets)
    assert access.operator_password() is None
    secrets.write_text(f'[operator]\npassword = "{PASSWORD}"\n', encoding="utf-8-sig")
    assert access.operator_password() == PASSWORD
    monkeypatch.setenv(access.PASSWORD_ENV, "from-env")
    assert access.operator_password() == "from-env"
    monkeypatch.delenv(access.PASSWORD_ENV)
    secrets.write_text("[operator]\npassword = 1234\n")
    with pytest.raises(keys.KeyConfigError, match=r"\[operator\] password must be a string"):
        access.operator_password()


# -- where it listens ----------------------------------------------------------------------------


def test_the_dashboard_listens_on_loopback_unless_told_otherwise():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1"
    # Streamlit itself reads it so (run from the repository, as `make run` runs it).
    shown = subprocess.run(
        [sys.executable, "-m", "streamlit", "config", "show"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'address = "127.0.0.1"' in shown
    recipes = {}
    for block in (REPO / "Makefile").read_text().split("\n\n"):
        head, _, body = block.partition("\n")
        recipes[head.split(":")[0]] = body
    assert "--server.address 127.0.0.1" in recipes["run"]
    assert "SYCOSCOPE_MODE=viewer" in recipes["serve"]


# -- the pages, through AppTest ----------------------------------------------------------------


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "store.duckdb"
    fixtures.build(path)
    return path


@pytest.fixture
def vendor(monkeypatch, tmp_path):
    """The OpenAI key set, the loopback fake standing in for api.openai.com, no secrets file, no
    configured server, no operator password, local mode unless a test says otherwise."""
    monkeypatch.setenv("OPENAI_API_KEY", VENDOR_KEY)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    for name in (servers.ENV, access.MODE_ENV, access.PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")
    with FakeVendor() as fake:
        monkeypatch.setitem(keys.VENDOR_URLS, "openai", fake.openai_url)
        yield fake


# a model the fixture store has no answer of, on one item: four probes to send
FRESH = {"provider": "openai", "model_name": "gpt-fresh", "sets": "trivia-mini", "limit": "1"}


def sidebar_text(at) -> str:
    return "\n".join(str(e.value) for e in (*at.sidebar.caption, *at.sidebar.error, *at.sidebar.warning))


def assert_no_operator_actions(db: Path, monkeypatch) -> None:
    """Run: no start; Data: no ingest, no folder, no export; Playground: no send."""
    at = open_page(db, monkeypatch, "run", **FRESH)
    ok(at)
    assert {m.label: m.value for m in at.metric}["To send"] == "4"
    assert at.button(key="start").disabled
    assert "Starting a run" in markup(at)
    at = open_page(db, monkeypatch, "data", ingest="sycophancy-eval/answer")
    ok(at)
    assert at.button(key="ingest").disabled and at.button(key="export").disabled
    assert at.radio(key="ingest_from").disabled
    assert not [t for t in at.text_input if t.key == "ingest_folder"]
    at = open_page(db, monkeypatch, "playground")
    at.text_area(key="pg_question").set_value("What is the capital of Australia?").run()
    ok(at)
    assert at.button(key="send").disabled
    assert not at.multiselect(key="url_pg_models").proto.accept_new_options


def test_viewer_mode_without_a_password_has_no_operator_actions(db, vendor, monkeypatch):
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    assert_no_operator_actions(db, monkeypatch)
    at = open_page(db, monkeypatch, "overview")
    assert "No operator password is set" in sidebar_text(at)
    assert not at.sidebar.text_input  # nothing to sign in with
    # Browsing is untouched.
    ok(open_page(db, monkeypatch, "transcripts"))
    ok(open_page(db, monkeypatch, "compare"))
    assert vendor.requests == []


def test_a_dashboard_listening_beyond_loopback_is_in_viewer_mode(db, vendor, monkeypatch):
    before = st_config.get_option("server.address")
    st_config.set_option("server.address", "0.0.0.0")
    try:
        assert_no_operator_actions(db, monkeypatch)
    finally:
        st_config.set_option("server.address", before)


def operator_secrets(monkeypatch, tmp_path) -> None:
    """Viewer mode, the operator password in secrets.toml (with a byte-order mark)."""
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[operator]\npassword = "{PASSWORD}"\n', encoding="utf-8-sig")
    monkeypatch.setattr(keys, "SECRETS", secrets)


def sign_in(db: Path, monkeypatch, password: str):
    """A new session enters `password` in the sidebar. (AppTest reruns a page's own file after its
    first run, without app.py and its sidebar; a real server runs app.py every time, as the browser
    test below shows with the sidebar's messages.)"""
    at = open_page(db, monkeypatch, "overview")
    assert at.sidebar.text_input(key="operator_entry").label == "Operator password"
    at.sidebar.text_input(key="operator_entry").input(password).run()
    ok(at)
    assert at.session_state["operator_entry"] == ""  # the field was emptied
    return at


def test_a_wrong_password_opens_nothing(db, vendor, monkeypatch, tmp_path):
    operator_secrets(monkeypatch, tmp_path)
    at = sign_in(db, monkeypatch, PASSWORD + "!")
    at.switch_page("pages/run.py")
    for name, value in FRESH.items():
        at.query_params[name] = value
    at.run()
    assert at.button(key="start").disabled and "needs the operator password" in markup(at)


def test_the_operator_password_opens_every_action_for_the_session(db, vendor, monkeypatch, tmp_path):
    operator_secrets(monkeypatch, tmp_path)
    at = open_page(db, monkeypatch, "run", **FRESH)
    assert at.button(key="start").disabled and "needs the operator password" in markup(at)

    at = sign_in(db, monkeypatch, PASSWORD)
    at.switch_page("pages/run.py")
    for name, value in FRESH.items():
        at.query_params[name] = value
    at.run()
    assert not at.button(key="start").disabled
    at.button(key="start").click().run()
    ok(at)
    run_id = at.query_params["run"]
    runner._background[run_id].join(timeout=60)
    assert runner.list_runs(Store(db)).set_index("run_id").loc[run_id, "n_done"] == 4
    assert len(vendor.requests) == 4

    # The same session on the other pages: no second sign-in.
    at.switch_page("pages/data.py")
    at.query_params["ingest"] = "builtin/facts-answer"
    at.run()
    ok(at)
    at.button(key="ingest").click().run()
    assert "builtin/facts-answer" in set(browse.sets(Store(db))["set_id"])
    at.button(key="export").click().run()
    ok(at)
    written = Path(at.session_state["export_path"])
    assert written.is_file()
    written.unlink()

    at.switch_page("pages/playground.py")
    at.query_params["pg_models"] = "openai:gpt-fresh"
    at.run()
    at.text_area(key="pg_question").set_value("What is the capital of Australia?")
    at.text_input(key="pg_right").set_value("Canberra")
    at.text_input(key="pg_wrong").set_value("Sydney")
    at.button(key="send").click().run()
    ok(at)
    assert len(vendor.requests) == 4 + 2  # neutral and suggests_wrong


def test_the_run_page_takes_no_address_and_runs_a_keyless_named_server(db, vendor, monkeypatch):
    with FakeVendor() as lab:
        monkeypatch.setenv(servers.ENV, json.dumps({"lab": {"base_url": lab.openai_url}}))
        for provider in ("bundled", "openai", "anthropic", "lab"):
            at = open_page(db, monkeypatch, "run", provider=provider, sets="trivia-mini")
            ok(at)
            assert not [t.label for t in at.text_input if "url" in t.label.lower()], provider
        assert "lab (OpenAI-compatible server)" in at.selectbox(key="url_provider").options
        assert "server lab: no key, none needed" in markup(at)

        at = open_page(db, monkeypatch, "run", **{**FRESH, "provider": "lab"})
        ok(at)
        at.button(key="start").click().run()
        run_id = at.query_params["run"]
        runner._background[run_id].join(timeout=60)
        run = runner.list_runs(Store(db)).set_index("run_id").loc[run_id]
        assert (run["status"], run["model"], run["base_url"]) == ("done", "openai:gpt-fresh", lab.openai_url)
        assert len(lab.requests) == 4 and vendor.requests == []
        assert all(VENDOR_KEY not in json.dumps(r.headers) for r in lab.requests)
        assert {r.headers["authorization"] for r in lab.requests} == {"Bearer not-needed"}


# -- a real server, in headless Chromium ----------------------------------------------------------


def test_a_served_dashboard_in_a_browser_signs_the_operator_in(db, monkeypatch, tmp_path):
    """`make serve` as a browser sees it (on loopback here): Start is off until the operator signs in."""
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    monkeypatch.setenv(access.PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv("OPENAI_API_KEY", VENDOR_KEY)  # never used: nothing is started
    query = "&".join(f"{k}={v}" for k, v in FRESH.items())
    with (
        browser.dashboard(db, tmp_path / "server.log") as url,
        browser.chromium() as chromium,
    ):
        page = browser.new_page(chromium)
        browser.open_url(page, f"{url}/run?{query}", "Run probes")
        start = browser.widget(page, "start").get_by_role("button")
        expect(start).to_be_disabled()
        expect(page.get_by_text("needs the operator password")).to_be_visible()
        field = browser.widget(page, "operator_entry").locator("input")
        browser.commit_text(page, field, "not the password")
        expect(page.get_by_text("Wrong password.")).to_be_visible()
        expect(start).to_be_disabled()
        browser.commit_text(page, field, PASSWORD)
        expect(page.get_by_text("signed in as the operator")).to_be_visible()
        expect(start).to_be_enabled()
        assert browser.problems(page) == []
        sign_out = browser.widget(page, "operator_sign_out").get_by_role("button")
        browser.after_rerun(page, sign_out.click)
        expect(start).to_be_disabled()
        page.context.close()


def test_a_visitor_opening_an_empty_store_in_viewer_mode_starts_no_run(vendor, monkeypatch, tmp_path):
    """The first-run fill is a run of the bundled model: in viewer mode it waits for the operator."""
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    empty = tmp_path / "empty.duckdb"
    at = open_page(empty, monkeypatch, "overview")
    ok(at)
    store = Store(empty)
    assert runner.list_runs(store).empty
    assert store.stats()["sets"] == {}


def test_the_operator_sees_where_the_store_lies_and_a_visitor_does_not(db, vendor, monkeypatch):
    at = open_page(db, monkeypatch, "data")  # local mode: the owner at their machine
    assert str(db) in [c.value for c in at.code]
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    at = open_page(db, monkeypatch, "data")
    ok(at)
    assert str(db) not in [c.value for c in at.code]
