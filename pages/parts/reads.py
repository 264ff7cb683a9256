"""Store access for the pages: one store handle per server, and queries cached until the store's
data change."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import streamlit as st

from lib.measure import grading, metrics
from lib.store import Store, StoreError, default_path
from lib.view import browse
from pages.parts import frame, url


def store() -> Store:
    """The store at $SYCOSCOPE_DB (or the default file); a store that cannot be opened stops the page
    with the reason."""
    _through_app()
    try:
        return _open(str(default_path()))
    except StoreError as e:
        st.error(str(e))
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
    grades or sets), so repeated reruns cost one cheap query."""
    path = str(store().path)
    return _call(fn.__module__, fn.__name__, path, _version(path), args, tuple(sorted(kwargs.items())))


@st.cache_data(ttl=1, show_spinner=False)
def _version(path: str) -> tuple:
    return browse.data_version(_open(path))


@st.cache_data(show_spinner=False, max_entries=512)
def _call(module: str, name: str, path: str, version: tuple, args: tuple, kwargs: tuple) -> Any:
    fn = getattr(importlib.import_module(module), name)
    return fn(_open(path), *args, **dict(kwargs))


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
