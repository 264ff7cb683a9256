"""URL state: query parameters, and select widgets whose choice lives in the URL, so that a link
reopens the page as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st


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


def presenting() -> bool:
    """Whether the link asks for presentation mode (present=1)."""
    return param("present") in ("1", "true")
