"""The real dashboard in a real browser, for the end-to-end test and the README screenshots: the
Streamlit server as a subprocess on a free port, Debian's headless Chromium through Playwright, and
waits on the state the Streamlit front end itself reports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser as AsyncBrowser
from playwright.async_api import Page as AsyncPage
from playwright.async_api import async_playwright
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from lib.paths import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
E2E = REPO / "artifacts" / "e2e"  # the end-to-end tests' screenshots and server logs (git-ignored)
START_TIMEOUT = 90.0
WAIT_MS = 60_000  # a page rerun on two busy cores (the bundled model answering) can take seconds
expect.set_options(timeout=WAIT_MS)  # every wait in the browser tests, unless told otherwise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
            return reply.read().strip() == b"ok"
    except OSError:
        return False


@contextmanager
def dashboard(db: Path, log: Path) -> Iterator[str]:
    """`streamlit run app.py` on the store at `db`, its output in `log`; yields its base URL. The
    server runs in its own process group, so that the bundled model's server it may start goes
    with it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.headless", "true",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
        # other work in the tree must not rerun the pages under the test
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    env = {**os.environ, "SYCOSCOPE_DB": str(db)}
    env.pop("SYCOSCOPE_BUNDLED_URL", None)  # the server starts its own bundled model
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        server = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not _healthy(url):
                if server.poll() is not None:
                    raise RuntimeError(f"streamlit exited with {server.returncode}; see {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"streamlit did not answer on {url} in {START_TIMEOUT:.0f} s; see {log}"
                    )
                time.sleep(0.2)
            yield url
        finally:
            _stop(server)


def served(name: str, build: Callable[[Path], object]) -> Any:
    """A module-scoped fixture for a test module to name `app`: the dashboard's base URL, on a new store
    that `build` writes first; the server's output in artifacts/e2e/<name>-server.log."""

    @pytest.fixture(scope="module", name="app")
    def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
        db = tmp_path_factory.mktemp(name) / "store.duckdb"
        build(db)
        with dashboard(db, E2E / f"{name}-server.log") as url:
            yield url

    return app


def _stop(server: subprocess.Popen) -> None:
    """The server's whole process group: SIGTERM, then SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(grace)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def opened(url: str, title: str) -> Iterator[Page]:
    """Chromium, and a page of its own on `url` once the page's first run has ended."""
    with chromium() as browser:
        page = new_page(browser)
        open_url(page, url, title)
        yield page


# Counts the script runs a page has seen start, so that an action can wait for the run it caused
# rather than for a quiet moment before that run has begun.
_COUNT_RUNS = """
window.__runs = 0;
window.__stops = 0;
new MutationObserver((changes) => {
  for (const change of changes) {
    const state = change.target.getAttribute("data-test-script-state");
    if (state === "running") window.__runs++;
    if (state === "notRunning") window.__stops++;
  }
}).observe(document, {subtree: true, attributes: true, attributeFilter: ["data-test-script-state"]});
"""


def new_page(browser: Browser, width: int = 1400, height: int = 1000) -> Page:
    """A page in a context of its own (a session of its own, as a copied link opened elsewhere)."""
    context = browser.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(WAIT_MS)
    context.add_init_script(_COUNT_RUNS)
    return context.new_page()


def after_rerun(page: Page, action: Callable[[], object]) -> None:
    """Do `action` (a click, a key) and wait until the script run it starts has ended. An action taken
    while a timer fragment runs may merge into that run (the state stays "running", no new start is
    seen): then the end of the run going on is what is waited for."""
    before = page.evaluate(_RUN_STATE)
    action()
    page.wait_for_function(
        """([runs, stops, running]) => window.__runs > runs || (running && window.__stops > stops)""",
        arg=before,
    )
    settle(page)


_RUN_STATE = """() => [window.__runs, window.__stops,
  document.querySelector('[data-testid="stApp"]')?.getAttribute("data-test-script-state") === "running"]"""


def commit_text(page: Page, field: Locator, value: str, key: str = "Enter") -> None:
    """Type `value` into a text or number field, commit it with `key` and wait for the script run that
    takes it. The field's "Press Enter to apply" goes when the page has committed the value. The run
    usually shows as a new start; one that begins while a timer fragment runs merges into that run
    (the state stays "running"), so that start is waited for only briefly. Callers then check the
    value's effect."""
    before = page.evaluate("window.__runs")
    field.fill(value)
    field.press(key)
    expect(page.get_by_text(_TO_APPLY)).to_have_count(0)
    with suppress(PlaywrightTimeoutError):
        page.wait_for_function("n => window.__runs > n", arg=before, timeout=5_000)
    settle(page)


_TO_APPLY = re.compile(r"^Press (Ctrl|⌘)?\+?Enter to apply$")


def settle(page: Page, timeout: float = WAIT_MS) -> None:
    """Wait until the app is connected and no script run is going on. A fragment that reruns on a
    timer makes this briefly false now and then; callers wait for what they expect to see first."""
    app = page.get_by_test_id("stApp")
    expect(app).to_have_attribute("data-test-connection-state", "CONNECTED", timeout=timeout)
    expect(app).to_have_attribute("data-test-script-state", "notRunning", timeout=timeout)
    # elements whose code is still loading (charts, tables, selects) show a skeleton until then
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0, timeout=timeout)


def open_url(page: Page, url: str, title: str) -> None:
    """Go to `url` and wait for the page's title and the end of its first run."""
    page.goto(url)
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible(timeout=WAIT_MS)
    settle(page)


def widget(page: Page, key: str) -> Locator:
    """The element of the widget with this key (Streamlit gives it the class st-key-<key>)."""
    return page.locator(f".st-key-{key}")


def choose(page: Page, key: str, option: str) -> None:
    """Pick `option` (its shown text) in the selectbox or multiselect with this key, and wait for the
    rerun it causes (which may replace the widgets below it). A selectbox showing it already is left
    as it is: picking it again would cause no rerun."""
    box = widget(page, key).get_by_role("combobox")
    if box.input_value() == option:
        return

    def pick() -> None:
        box.click()
        page.get_by_role("option", name=option, exact=True).click()
        # A multiselect keeps its list open: a click beside it closes it (Escape would stop the run).
        page.locator("h1").click(position={"x": 5, "y": 5})  # CSS: the open list hides the rest from ARIA

    after_rerun(page, pick)


def problems(page: Page) -> list[str]:
    """The text of every exception and error alert on the page."""
    found = page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]')
    return [found.nth(i).inner_text() for i in range(found.count())]


def charts_drawn(page: Page, timeout: float = WAIT_MS) -> None:
    """Wait until every Plotly chart on the page has drawn its SVG."""
    # one predicate over all charts at once: a fragment that reruns may add or drop one meanwhile
    page.wait_for_function(_CHARTS_DRAWN, timeout=timeout)


def one_chart(page: Page) -> Locator:
    """The page's one Plotly chart, drawn, on a page showing no exception or error."""
    chart = page.get_by_test_id("stPlotlyChart")
    expect(chart).to_have_count(1)
    charts_drawn(page)
    assert not problems(page), problems(page)
    return chart


def legend(chart: Locator) -> list[str]:
    """The names in a Plotly chart's legend, in its order."""
    return chart.locator(".legend .legendtext").all_text_contents()  # SVG: text, not innerText


def shoot(page: Page, path: Path, whole: bool = True, max_height: int = 6000) -> Path:
    """A screenshot of the page; `whole`: all of it (the main area scrolls inside the window, so the
    window grows to its height for the shot)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    size = page.viewport_size or {"width": 1400, "height": 900}
    if whole:
        height = page.get_by_test_id("stMain").evaluate("e => e.scrollHeight")
        page.set_viewport_size(
            {"width": size["width"], "height": min(max(height, size["height"]), max_height)}
        )
        charts_drawn(page)
    try:
        page.screenshot(path=str(path))
    finally:
        page.set_viewport_size(size)
    return path


_CHARTS_DRAWN = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"]')]
  .every((c) => c.querySelector(".main-svg"))"""

# The same "rendered" as open_url, settle and charts_drawn together, as one predicate the page itself
# evaluates: the load test drives many sessions at once from one thread with Playwright's asyncio API,
# where the waits above (sync API) cannot run side by side.
_RENDERED = """([title, marker]) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute("data-test-connection-state") !== "CONNECTED") return false;
  if (app.getAttribute("data-test-script-state") !== "notRunning") return false;
  if (document.querySelector('[data-testid="stSkeleton"]')) return false;
  if (![...document.querySelectorAll("h1")].some((h) => h.textContent.trim() === title)) return false;
  if (!document.querySelector(`[data-testid="${marker}"]`)) return false;
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"]')];
  return charts.every((c) => c.querySelector(".main-svg"));
}"""
_PROBLEMS = """() => [...document.querySelectorAll(
  '[data-testid="stException"], [data-testid="stAlertContentError"]')].map((e) => e.innerText)"""


async def rendered_async(
    page: AsyncPage, url: str, title: str, marker: str, timeout: float = WAIT_MS
) -> list[str]:
    """Go to `url` and wait until the page is rendered: its title heading, the element with test id
    `marker`, every chart drawn, no script run going on. Returns the text of every exception or error
    alert it shows."""
    await page.goto(url)
    await page.wait_for_function(_RENDERED, arg=[title, marker], timeout=timeout, polling=50)
    return await page.evaluate(_PROBLEMS)


@asynccontextmanager
async def chromium_async() -> AsyncIterator[AsyncBrowser]:
    """Debian's Chromium, headless, for Playwright's asyncio API."""
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()
