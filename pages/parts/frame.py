"""The app's frame around every page: the navigation, and presentation mode (large text, no
sidebar) for talks and classrooms."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages.parts import url

# Static CSS for presentation mode: larger text, no toolbar or sidebar. No model text goes here.
_PRESENT_CSS = """<style>
html { font-size: 21px; }
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stMainMenu"],
[data-testid="stAppDeployButton"],
[data-testid="stDecoration"], [data-testid="stStatusWidget"], footer { display: none !important; }
.block-container { padding-top: 4.5rem; max-width: 1500px; }
</style>"""


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


def _toggle_present() -> None:
    url.set_param("present", "1" if st.session_state["present_toggle"] else None)
