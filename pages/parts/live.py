"""Runs in progress: a run's state, the runs going on now, and the first run that fills a fresh
store."""

from __future__ import annotations

import threading
from typing import Any

import streamlit as st

from lib.store import Store
from lib.view import charts, firstrun
from pages.parts import frame, reads, show

_SEED_LOCK = threading.Lock()  # one seed, however many sessions open a fresh store at once


def first_run(store: Store) -> None:
    """On a fresh store, fill it from the built-in sets with the bundled model, offline, and show
    the run's progress while it goes on. A visitor of a served dashboard starts no run: the fill
    waits for the operator."""
    with _SEED_LOCK:
        if firstrun.needs_seed(store) and frame.may_operate():
            with st.spinner("A fresh store: adding the built-in sets…"):
                firstrun.start_seed(store)
            st.toast("Filling the store from the built-in sets with the bundled model, offline")
    live_runs()


@st.fragment(run_every=3)
def live_runs() -> None:
    """The runs going on now, their counts refreshed every few seconds from the runs table (one read a
    second for all sessions). The whole page reruns only when one of them ends or changes status, so
    that its charts take the run's answers in: not on every new transcript, which with many tabs open
    would rerun every tab's page every few seconds."""
    runs = reads.runs()
    running = runs[runs["status"].isin(["planned", "running"])] if not runs.empty else runs
    for run in running.to_dict("records"):
        with st.container(border=True):
            st.markdown(f"**Run {show.md(run['run_id'])}** · {show.md(run['model'])}")
            run_status(run)
    if moved_on("_live_runs", {r.run_id: r.status for r in running.itertuples()}):
        st.rerun(scope="app")


def moved_on(key: str, state: Any) -> bool:
    """Whether the runs this session shows have moved on (started, ended) since it last looked, i.e.
    `state` differs from the one kept under `key`; then the next reads see the store as it is now."""
    before = st.session_state.get(key)
    st.session_state[key] = state
    if before is None or before == state:
        return False
    reads.refresh()
    return True


def run_status(run: dict[str, Any]) -> None:
    """One run's state: counts, a progress bar and its message (the message is ours or a provider's
    error text: shown as text)."""
    done = int(run["n_done"]) + int(run["n_cached"]) + int(run["n_failed"])
    planned = max(1, int(run["n_planned"]))
    st.progress(min(1.0, done / planned), text=f"{run['status']}: {done:,} of {planned:,} probes")
    st.plotly_chart(
        reads.figure(
            charts.run_progress, int(run["n_done"]), int(run["n_cached"]), int(run["n_failed"]), planned
        ),
        width="stretch",
        key=f"progress-{run['run_id']}",
    )
    if isinstance(run.get("message"), str) and run["message"]:
        st.text(run["message"])
