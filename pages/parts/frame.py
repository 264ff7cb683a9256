"""The app's frame around every page: the navigation, presentation mode (large text, no
sidebar) for talks and classrooms, and access: the mode in the sidebar, the operator's password,
and the gate pages put on operator actions (lib/view/access.py says who may do what)."""

from __future__ import annotations

import threading
import time
from typing import Any

import streamlit as st

from lib.run.keys import KeyConfigError
from lib.store.database import READ_ONLY_ENV, read_only_setting
from lib.view import access
from pages.parts import show, url

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
            st.Page("pages/deck.py", title="Deck", icon=":material/slideshow:"),
            st.Page("pages/pressure.py", title="Pressure", icon=":material/trending_down:"),
            st.Page("pages/why.py", title="Why: preferences", icon=":material/thumbs_up_down:"),
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


# The session's entered operator password: kept (server side, never shown) rather than a yes, so
# that changing the configured password ends every session's operator rights.
_ENTERED = "_operator_password"
WRONG_PASSWORD_PAUSE = 1.0  # seconds: slows guessing
# Guesses are checked one at a time across sessions, so many sessions at once guess no faster.
_GUESSING = threading.Lock()


def _access() -> tuple[str, str | None, str | None]:
    """(mode, a problem to show, the configured operator password)."""
    current, problem = access.current_mode(st.get_option("server.address"), dict(st.context.headers))
    if current == "local":
        return current, problem, None
    try:
        return current, problem, access.operator_password()
    except KeyConfigError as e:  # no readable password: no operator, and the sidebar says why
        return current, str(e), None


def may_operate() -> bool:
    """Whether this session may start or cancel runs, ingest, export and send: always in local
    mode, in viewer mode only after the operator password."""
    if read_only_setting():  # a store open read-only: no one writes, the operator neither
        return False
    current, _, configured = _access()
    return access.may_operate(current, st.session_state.get(_ENTERED), configured)


def operator(action: str) -> bool:
    """may_operate(), and when not, a caption saying why `action` (e.g. "Starting a run") is off.
    A page disables the action's control with it, and checks it again when the control fires:
    Streamlit drops a forged click of a disabled button only in its recent versions."""
    if read_only_setting():
        st.caption(f"{action} is off: the store is open read-only ({READ_ONLY_ENV} is set).")
        return False
    current, _, configured = _access()
    if access.may_operate(current, st.session_state.get(_ENTERED), configured):
        return True
    st.caption(
        f"{action} needs the operator password (in the sidebar): this dashboard is in viewer mode."
        if configured
        else f"{action} is off: this dashboard is in viewer mode, and no operator password is set."
    )
    return False


def access_panel() -> None:
    """The sidebar's access panel: the mode, and in viewer mode the operator's password field."""
    current, problem, configured = _access()
    side = st.sidebar
    if read_only_setting():
        side.caption(f"Read-only store ({READ_ONLY_ENV}): browsing, comparing and charts; nothing written.")
        return
    if problem:
        side.warning(show.md(problem), icon=":material/lock:")
    if current == "local":
        side.caption("Local mode: every action on." + ("" if problem else " This machine only."))
        return
    if not configured:
        side.caption(
            "Viewer mode: browsing, comparing and charts. No operator password is set, so runs, "
            "ingest, exports and Playground sends are off."
        )
        return
    if access.password_matches(st.session_state.get(_ENTERED), configured):
        side.caption("Viewer mode, signed in as the operator: every action on.")
        side.button("Sign out", key="operator_sign_out", on_click=_sign_out)
        return
    side.caption("Viewer mode: browsing, comparing and charts. The operator signs in for the rest.")
    side.text_input("Operator password", type="password", key="operator_entry", on_change=_enter)
    if st.session_state.pop("_operator_wrong", False):
        side.error("Wrong password.")


def _enter() -> None:
    """Keep the entered password if it is right; empty the field either way."""
    entered = st.session_state.get("operator_entry") or ""
    st.session_state["operator_entry"] = ""
    if not entered:
        return
    with _GUESSING:
        if access.password_matches(entered, _access()[2]):
            st.session_state[_ENTERED] = entered
            return
        time.sleep(WRONG_PASSWORD_PAUSE)
    st.session_state["_operator_wrong"] = True


def _sign_out() -> None:
    st.session_state.pop(_ENTERED, None)
