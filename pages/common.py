"""What every page shares: the store handle, cached queries, URL state, presentation mode, and the
few ways model text is shown (always as text, never as markdown or HTML)."""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from lib import browse, charts, firstrun, framings, grading, metrics, runner, textdiff
from lib.store import Store, StoreError, default_path

# Static CSS for presentation mode: larger text, no toolbar or sidebar. No model text goes here.
_PRESENT_CSS = """<style>
html { font-size: 21px; }
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stMainMenu"],
[data-testid="stAppDeployButton"],
[data-testid="stDecoration"], [data-testid="stStatusWidget"], footer { display: none !important; }
.block-container { padding-top: 4.5rem; max-width: 1500px; }
</style>"""


# -- the store ----------------------------------------------------------------------------------
@st.cache_resource(show_spinner=False)
def _open(path: str) -> Store:
    return Store(path)


def pages(presenting: bool) -> Any:
    """The app's navigation; app.py runs the page it returns."""
    return st.navigation(
        [
            st.Page("pages/overview.py", title="Overview", icon=":material/insights:", default=True),
            st.Page("pages/transcripts.py", title="Transcripts", icon=":material/forum:"),
            st.Page("pages/compare.py", title="Compare models", icon=":material/compare:"),
            st.Page("pages/run.py", title="Run probes", icon=":material/play_circle:"),
            st.Page("pages/playground.py", title="Playground", icon=":material/science:"),
            st.Page("pages/data.py", title="Data", icon=":material/database:"),
        ],
        position="top" if presenting else "sidebar",
    )


def _through_app() -> None:
    """Until a session of this server has called st.navigation, Streamlit runs a deep-linked file of
    pages/ on its own (its older multipage mode), without app.py. Such a run declares the
    navigation and reruns, so that app.py routes the link."""
    if not st.session_state.get("_via_app"):
        pages(presenting())
        st.session_state["_via_app"] = True
        st.rerun()


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


@st.cache_data(ttl=1, show_spinner=False)
def _version(path: str) -> tuple:
    return browse.data_version(_open(path))


@st.cache_data(show_spinner=False, max_entries=512)
def _call(module: str, name: str, path: str, version: tuple, args: tuple, kwargs: tuple) -> Any:
    fn = getattr(importlib.import_module(module), name)
    return fn(_open(path), *args, **dict(kwargs))


def cached(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(store, *args, **kwargs), cached until the store's data version changes (new transcripts,
    grades or sets), so repeated reruns cost one cheap query."""
    path = str(store().path)
    return _call(fn.__module__, fn.__name__, path, _version(path), args, tuple(sorted(kwargs.items())))


# -- URL state ------------------------------------------------------------------------------------
def param(name: str, default: str | None = None) -> str | None:
    """A query parameter that is not bound to a widget."""
    value = st.query_params.get(name)
    return value if value else default


def set_param(name: str, value: str | None) -> None:
    if value is None:
        if name in st.query_params:
            del st.query_params[name]
    elif st.query_params.get(name) != value:
        st.query_params[name] = value


def int_param(name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high]; anything else reads as the default."""
    try:
        value = int(param(name) or default)
    except ValueError:
        return default
    return min(max(value, low), high)


def url_select(
    label: str,
    options: list[str],
    name: str,
    *,
    format_func: Callable[[str], str] = str,
    placeholder: str | None = None,
    where: Any = None,
    **kwargs: Any,
) -> str | None:
    """A selectbox whose choice lives in the URL under `name` as the option itself (an id), shown
    through `format_func`. (Streamlit's own binding would put the formatted label in the URL.)
    With a placeholder, nothing chosen is a choice (None); an unknown value in the URL is dropped."""
    key = f"url_{name}"
    linked = param(name)
    if linked is not None and linked not in options:
        set_param(name, None)
        linked = None
    if linked is not None:
        st.session_state[key] = linked
    elif st.session_state.get(key) not in options:
        st.session_state[key] = None if placeholder else (options[0] if options else None)

    def sync() -> None:
        set_param(name, st.session_state[key])

    return (where or st).selectbox(
        label, options, key=key, on_change=sync, format_func=format_func, placeholder=placeholder, **kwargs
    )


def url_multiselect(
    label: str,
    options: list[str],
    name: str,
    *,
    default: list[str] | None = None,
    format_func: Callable[[str], str] = str,
    where: Any = None,
    **kwargs: Any,
) -> list[str]:
    """A multiselect whose choices live in the URL as repeated `name` parameters (ids); values
    the options do not hold are dropped."""
    key = f"url_{name}"
    linked = [v for v in st.query_params.get_all(name) if v in options]
    if linked:
        st.session_state[key] = linked
    elif key not in st.session_state or not set(st.session_state[key]) <= set(options):
        st.session_state[key] = [v for v in (default or []) if v in options]

    def sync() -> None:
        st.query_params[name] = st.session_state[key]

    return (where or st).multiselect(
        label, options, key=key, on_change=sync, format_func=format_func, **kwargs
    )


# -- presentation mode ----------------------------------------------------------------------------
def presenting() -> bool:
    return param("present") in ("1", "true")


def _toggle_present() -> None:
    set_param("present", "1" if st.session_state["present_toggle"] else None)


def presentation(on: bool) -> None:
    """Large text and no clutter when on; the switch sits in the sidebar, or at the top while
    presenting (the sidebar is hidden then)."""
    place = st.container(horizontal_alignment="right") if on else st.sidebar
    place.toggle(
        "Presentation mode",
        value=on,
        key="present_toggle",
        on_change=_toggle_present,
        help="Large text and no sidebar, for talks and classrooms; the URL keeps it (present=1)",
    )
    if on:
        st.html(_PRESENT_CSS)


# -- showing data ---------------------------------------------------------------------------------
EMPTY_STORE = (
    "The store has no sets yet: open the Overview to fill it from the built-in sets with the bundled "
    "model, or ingest a set on the Data page."
)


def framing_options(task: str | None) -> list[str]:
    """The framing ids of a task (of all tasks if None)."""
    return [f.id for f in framings.FRAMINGS if task is None or f.task == task]


def set_label(sets: pd.DataFrame) -> Callable[[str], str]:
    titles = dict(zip(sets["set_id"], sets["title"], strict=True)) if not sets.empty else {}
    return lambda set_id: f"{titles.get(set_id, set_id)} ({set_id})"


_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~:$])")


def md(text: str) -> str:
    """An identifier (a model or set name) made safe to put in markdown: every markup character
    escaped. Model output is never passed through here: it goes to st.text."""
    return _MARKDOWN.sub(r"\\\1", text)


_SAFE_BADGE = re.compile(r"[^\w .:/@%+-]")


def badge_text(text: str) -> str:
    """A badge label is rendered as markdown: keep only characters that cannot form markup."""
    return _SAFE_BADGE.sub("", text)[:60]


def grade_badges(grades: pd.DataFrame) -> None:
    """One badge per current grader's verdict: green correct, red incorrect, grey a score or label."""
    if grades.empty:
        st.badge("ungraded", color="gray")
        return
    row = st.container(horizontal=True, gap="small")
    for g in grades.itertuples():
        colour = "gray" if pd.isna(g.correct) else "green" if g.correct else "red"
        detail = g.label if isinstance(g.label, str) and g.label else ""
        if colour == "gray" and not pd.isna(g.score) and not detail:
            detail = f"{g.score:.2f}"
        row.badge(badge_text(f"{g.grader}: {detail}"), color=colour)


def answer_view(answer: Any, grades: pd.DataFrame, missing: str) -> None:
    """One stored answer: its grade badges, then its conversation as text; `missing` if there is none."""
    if answer is None:
        st.info(missing)
        return
    grade_badges(grades[grades["transcript_id"] == answer["transcript_id"]])
    conversation(answer["messages"], answer["response"])


def conversation(messages: list[dict[str, str]], response: str | None) -> None:
    """A conversation and its reply, as plain text: model and dataset text never render as markup.
    A trailing assistant message is a prefill: the reply continues it."""
    prefill = messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None
    shown = messages[:-1] if prefill is not None else messages
    for m in shown:
        with st.chat_message("user" if m["role"] == "user" else "assistant"):
            st.text(m["content"])
    with st.chat_message("assistant"):
        if response is None:
            st.caption("no reply stored for this model")
        else:
            st.text((prefill or "") + response)


def stance(neutral: list[dict[str, str]], framed: list[dict[str, str]]) -> None:
    """The framed prompt against the neutral one, word by word: what the user added (their stance)
    shows as green "+" lines."""

    def users(messages: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in messages if m["role"] == "user")

    segments = textdiff.word_diff(users(neutral), users(framed))
    st.caption("User's stance (green: added to the neutral prompt)")
    st.code(textdiff.as_diff_lines(segments), language="diff", wrap_lines=True)


def reply_diff(a: str, b: str, a_name: str, b_name: str) -> None:
    """The two replies word by word, folded: a run of words per line, which is long to scroll past."""
    segments = textdiff.word_diff(a, b)
    counts = textdiff.summary(segments)
    with st.expander(
        f"Word-level diff of the replies: {counts['delete']} words only in {a_name}, "
        f"{counts['insert']} only in {b_name}, {counts['equal']} shared"
    ):
        st.caption(f"Red: only in {a_name}; green: only in {b_name}")
        st.code(
            textdiff.as_diff_lines(segments) or "(both replies are empty)", language="diff", wrap_lines=True
        )


# -- runs in progress -----------------------------------------------------------------------------
def run_status(run: dict[str, Any]) -> None:
    """One run's state: counts, a progress bar and its message (the message is ours or a provider's
    error text: shown as text)."""
    done = int(run["n_done"]) + int(run["n_cached"]) + int(run["n_failed"])
    planned = max(1, int(run["n_planned"]))
    st.progress(min(1.0, done / planned), text=f"{run['status']}: {done:,} of {planned:,} probes")
    st.plotly_chart(
        charts.run_progress(int(run["n_done"]), int(run["n_cached"]), int(run["n_failed"]), planned),
        width="stretch",
        key=f"progress-{run['run_id']}",
    )
    if isinstance(run.get("message"), str) and run["message"]:
        st.text(run["message"])


@st.fragment(run_every=3)
def live_runs() -> None:
    """The runs going on now, refreshed every few seconds; when one has moved on, the whole page
    reruns so that its charts and counts take the new transcripts in."""
    runs = runner.list_runs(store(), limit=10)
    running = runs[runs["status"].isin(["planned", "running"])] if not runs.empty else runs
    seen = {r.run_id: (r.status, r.n_done, r.n_failed) for r in running.itertuples()}
    for run in running.to_dict("records"):
        with st.container(border=True):
            st.markdown(f"**Run {md(run['run_id'])}** · {md(run['model'])}")
            run_status(run)
    before = st.session_state.get("_live_runs", {})
    st.session_state["_live_runs"] = seen
    if before != seen and before:
        st.rerun(scope="app")


_SEED_LOCK = threading.Lock()  # one seed, however many sessions open a fresh store at once


def first_run(store: Store) -> None:
    """On a fresh store, fill it from the built-in sets with the bundled model, offline, and show
    the run's progress while it goes on."""
    with _SEED_LOCK:
        if firstrun.needs_seed(store):
            with st.spinner("A fresh store: adding the built-in sets…"):
                firstrun.start_seed(store)
            st.toast("Filling the store from the built-in sets with the bundled model, offline")
    live_runs()
