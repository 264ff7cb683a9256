"""Store access for the pages: one store handle per server, and queries cached until the store's
data change, computed once for every session of the server.

One computation for all sessions: st.cache_data keeps one value per key for the whole server, and
while one session computes a missing value the other sessions asking for the same key wait for it
(Streamlit's per-key compute lock) rather than compute it too. The key holds the store's data version,
read at most once a second for all sessions.

While a run writes, that version changes with every transcript. The slow reads (SLOW: the metric
tables, seconds to tens of seconds on a large store) then do not make anyone wait: a page gets the
newest value there is, and one background computation brings it up to date, at most every
FOLLOW_EVERY seconds, or every FOLLOW_COST times its last computation if that is longer (a run does
not keep a core busy recomputing them). When no run is going (an import, a grading, the end of a run)
they follow the data at once, and the page waits for them as for any read."""

from __future__ import annotations

import copy
import importlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from lib.measure import grading, metrics
from lib.run import runner
from lib.store import Store, StoreError, default_location
from lib.view import browse
from pages.parts import frame, show, url


def store() -> Store:
    """The store at $SYCOSCOPE_DB (or the default file); a store that cannot be opened stops the page
    with the reason."""
    _through_app()
    try:
        return _open(default_location())
    except StoreError as e:
        show.problem(str(e))
        st.stop()
        raise  # st.stop() raises; this line only tells type checkers so


@st.cache_resource(show_spinner=False)
def _open(path: str) -> Store:
    return Store(path)


def _through_app() -> None:
    """Until a session of this server has called st.navigation, Streamlit runs a deep-linked file of
    pages/ on its own (its older multipage mode), without app.py. Such a run declares the
    navigation and reruns, so that app.py routes the link."""
    if not st.session_state.get("_via_app"):
        frame.pages(url.presenting())
        st.session_state["_via_app"] = True
        st.rerun()


def cached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(store, *args, **kwargs), cached until the store's data version changes (new transcripts,
    grades or sets), so repeated reruns cost one cheap query; computed once for all sessions."""
    path = store().location
    kwargs_key = tuple(sorted(kwargs.items()))
    if fn in SLOW:
        key = _slow_key(path, fn, args, kwargs)
        return _LATEST.get(key, _version(path), _run_going(path), lambda: fn(_open(path), *args, **kwargs))
    return _call(fn.__module__, fn.__name__, path, _version(path), args, kwargs_key)


def _slow_key(path: str, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> tuple:
    return (path, fn.__module__, fn.__name__, repr(args), repr(tuple(sorted(kwargs.items()))))  # names only


def say_if_behind(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Under a slow read that a running run has moved past (cached() gave its newest value, not the
    data's), a caption saying how old it is; nothing when it is up to date."""
    path = store().location
    age = _LATEST.age(_slow_key(path, fn, args, kwargs), _version(path))
    if age is not None:
        st.caption(
            f"As of {age:.0f} s ago: while a run writes, this follows it every {FOLLOW_EVERY:.0f} s or "
            "more; the progress counts are current."
        )


def runs() -> pd.DataFrame:
    """The recent runs (lib.run.runner.list_runs), read at most once a second for all sessions."""
    return _runs(store().location)


def refresh() -> None:
    """Read the data version and the runs again at the next read, and the slow reads too, though
    another run goes on (a run has just ended: its last answers count)."""
    _version.clear()
    _runs.clear()
    _LATEST.settle()


def figure(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args): a chart of data already read, made once for all sessions that show the same data
    (building a Plotly figure costs tens of milliseconds, a copy of a made one a few)."""
    return _figure(fn.__module__, fn.__name__, args)


SLOW = (browse.metric_tables, browse.run_accuracy)
FOLLOW_EVERY = 10.0  # seconds
FOLLOW_COST = 5  # times the last computation


class Latest:
    """The newest value of each slow read, with the data version it was computed at (module
    docstring). Each value is computed by one thread at a time, the others waiting for it; readers
    get copies, as from st.cache_data. The least recently read of more than `keep` are dropped."""

    def __init__(self, keep: int = 64):
        self.keep = keep
        self.lock = threading.Lock()
        self.values: OrderedDict[tuple, tuple[tuple, float, Any]] = OrderedDict()  # version, made at, value
        self.costs: dict[tuple, float] = {}  # seconds the last computation took
        self.flights: dict[tuple, threading.Lock] = {}  # one computation of a key at a time
        self.refreshing: set[tuple] = set()
        self.failed: dict[tuple, float] = {}  # when a key's last background computation failed
        # When a run last ended (settle): values made before then are computed again in the
        # foreground, though another run goes on, so that the ended run's last answers count.
        self.settled = 0.0

    def age(self, key: tuple, version: tuple) -> float | None:
        """Seconds since the value of `key` was made, if it is not of `version`; else None."""
        with self.lock:
            held = self.values.get(key)
        return time.monotonic() - held[1] if held is not None and held[0] != version else None

    def settle(self) -> None:
        with self.lock:
            self.settled = time.monotonic()

    def get(self, key: tuple, version: tuple, going: bool, compute: Callable[[], Any]) -> Any:
        """The value of `key` at `version`: computed now, or, while a run is `going`, the newest one
        there is, brought up to date in the background."""
        with self.lock:
            held = self.values.get(key)
            if held is not None:
                self.values.move_to_end(key)
        if held is None or held[0] != version and (not going or held[1] < self.settled):
            return copy.deepcopy(self._compute(key, version, compute))
        if held[0] != version:
            self._refresh(key, version, compute, held[1])
        return copy.deepcopy(held[2])

    def _compute(self, key: tuple, version: tuple, compute: Callable[[], Any]) -> Any:
        with self.lock:
            flight = self.flights.setdefault(key, threading.Lock())
        with flight:
            with self.lock:
                held = self.values.get(key)
            if held is not None and held[0] == version:
                return held[2]  # computed while this thread waited
            start = time.monotonic()
            value = compute()
            with self.lock:
                self.costs[key] = time.monotonic() - start
                self.values[key] = (version, time.monotonic(), value)
                self.values.move_to_end(key)
                while len(self.values) > self.keep:
                    dropped, _ = self.values.popitem(last=False)
                    self.costs.pop(dropped, None)
                    self.flights.pop(dropped, None)
            return value

    def _refresh(self, key: tuple, version: tuple, compute: Callable[[], Any], made_at: float) -> None:
        """Compute `key` again in a thread of its own, unless one is at it or the value is too new."""
        with self.lock:
            wait = max(FOLLOW_EVERY, FOLLOW_COST * self.costs.get(key, 0.0))
            last = max(made_at, self.failed.get(key, 0.0))  # a failed attempt waits like a success
            if key in self.refreshing or time.monotonic() - last < wait:
                return
            self.refreshing.add(key)

        def work() -> None:
            try:
                self._compute(key, version, compute)
            except Exception:
                # The pages keep the value they have; the first read when no run is going computes
                # it in the foreground and shows the error there. Here it goes to the server's log.
                with self.lock:
                    self.failed[key] = time.monotonic()
                _log.exception("refreshing %s.%s in the background failed", *key[1:3])
            finally:
                with self.lock:
                    self.refreshing.discard(key)

        threading.Thread(target=work, name="sycoscope-refresh", daemon=True).start()


_LATEST = Latest()
_log = logging.getLogger(__name__)


def _run_going(path: str) -> bool:
    recent = _runs(path)
    return bool(not recent.empty and recent["status"].isin(["planned", "running"]).any())


@st.cache_data(ttl=1, show_spinner=False)
def _version(path: str) -> tuple:
    return browse.data_version(_open(path))


@st.cache_data(ttl=1, show_spinner=False)
def _runs(path: str) -> pd.DataFrame:
    return runner.list_runs(_open(path), limit=20)


@st.cache_data(show_spinner=False, max_entries=512)
def _call(module: str, name: str, path: str, version: tuple, args: tuple, kwargs: tuple) -> Any:
    return getattr(importlib.import_module(module), name)(_open(path), *args, **dict(kwargs))


@st.cache_data(show_spinner=False, max_entries=64)
def _figure(module: str, name: str, args: tuple) -> Any:
    return getattr(importlib.import_module(module), name)(*args)


def judge() -> str | None:
    """The judge model whose verdicts the pages read, chosen in the sidebar when the store holds
    verdicts of more than none; None: offline graders only."""
    judges = cached(metrics.available_judges)
    if not judges:
        return None
    return st.sidebar.selectbox(
        "Judge",
        judges,
        index=None,
        placeholder="Offline graders only",
        key="judge",
        bind="query-params",
        help="Read LLM-judge verdicts of this model where they apply",
    )


def graders() -> list[str]:
    """The current "grader@version" strings (with the chosen judge's): only their grades are shown."""
    return grading.current_graders(judge())
