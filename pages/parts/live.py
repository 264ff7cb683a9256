"""Runs in progress: a run's state, the runs going on now, and the first run that fills a fresh
store."""

from __future__ import annotations

import threading
from typing import Any

import streamlit as st

from lib.run import runner
from lib.store import Store
from lib.view import charts, firstrun
from pages.parts import reads, show

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


@st.fragment(run_every=3)
def live_runs() -> None:
    """The runs going on now, refreshed every few seconds; when one has moved on, the whole page
    reruns so that its charts and counts take the new transcripts in."""
    runs = runner.list_runs(reads.store(), limit=10)
    running = runs[runs["status"].isin(["planned", "running"])] if not runs.empty else runs
    seen = {r.run_id: (r.status, r.n_done, r.n_failed) for r in running.itertuples()}
    for run in running.to_dict("records"):
        with st.container(border=True):
            st.markdown(f"**Run {show.md(run['run_id'])}** · {show.md(run['model'])}")
            run_status(run)
    before = st.session_state.get("_live_runs", {})
    st.session_state["_live_runs"] = seen
    if before != seen and before:
        st.rerun(scope="app")


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
