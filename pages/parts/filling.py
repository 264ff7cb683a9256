"""The Overview's line about the background fill (lib.view.fill): how far it is, and its Pause or
Resume control for the operator. Each session opened starts the fill once, if it is due."""

from __future__ import annotations

import streamlit as st

from lib.store import Store
from lib.view import fill
from pages.parts import frame, reads, show

_LOOKED = "_fill_looked"  # this session has started the fill, or found it not due


def fill_line(store: Store) -> None:
    """Start the fill once per session (the dashboard opened: lib.view.fill says when it resumes),
    then its status line, refreshed every few seconds while a step runs or waits for the seed."""
    if not st.session_state.get(_LOOKED) and frame.may_operate():
        st.session_state[_LOOKED] = True
        fill.start(store)
    st.fragment(_status, run_every=5 if fill.moving(store) else None)(store)


def _status(store: Store) -> None:
    state = fill.status(store, reads.cached(fill.progress))
    if state is None:
        return
    text, control = st.columns([5, 1], vertical_alignment="center")
    text.caption(state.text(quote=show.md))  # a stopped step's message may quote a provider
    may = frame.may_operate()
    if state.state in ("going", "waiting"):
        # Checked on the click too: see frame.operator.
        if control.button("Pause", key="fill_pause", disabled=not may) and frame.may_operate():
            fill.pause(store)
            st.rerun(scope="app")
    elif control.button("Resume", key="fill_resume", disabled=not may) and frame.may_operate():
        fill.resume(store)
        if why := fill.start(store, retry=True):
            st.toast(why)
        st.rerun(scope="app")
