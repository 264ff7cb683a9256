"""Showing data on a page: labels, grade badges and conversations. Model and dataset text is always
shown as text, never as markdown or HTML."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pandas as pd
import streamlit as st

from lib.probes import framings
from lib.view import browse, textdiff

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


def md(text: str) -> str:
    """Any text that is not ours (a model, set or grader name, an error message that may quote a file,
    a provider or a model) made safe to put in markdown: one code span, on one line. Escaping markup
    characters is not enough: Streamlit's markdown still turns a bare URL, a www. name or an e-mail
    address into a link, and :material/...: into an icon, after the escapes. Inside a code span nothing
    renders; a line break would end the span's paragraph (and a "===" line below make it a heading)."""
    line = " ".join(text.split())
    if not line:
        return ""
    fence = "`" * (max(map(len, re.findall(r"`+", line)), default=0) + 1)
    return f"{fence} {line} {fence}"  # the spaces let the text begin or end with a backtick


def problem(text: str, where: Any = st) -> None:
    """An error box for a message that may quote a file, a provider or a model: shown as text."""
    where.error(md(text))


_SAFE_BADGE = re.compile(r"[^\w .:/@%+-]")


def badge_text(text: str) -> str:
    """A badge label is markdown (and a code span would take its colour), so badges carry our own words
    (grader names and labels) only, cut to characters that form no markup other than a link."""
    return _SAFE_BADGE.sub("", text)[:60]


VERDICT_COLOURS = {"correct": "green", "incorrect": "red", "unclear": "orange"}


def grade_badges(grades: pd.DataFrame, verdict: Any = None, verdict_by: Any = None) -> None:
    """The resolved verdict (what every count uses) first, then one badge per current grader's verdict:
    green correct, red incorrect, grey a score or label."""
    if grades.empty:
        st.badge("ungraded", color="gray")
        return
    row = st.container(horizontal=True, gap="small")
    if isinstance(verdict, str):
        # the grader's name only: its version may name a judge model, which the caption below shows as text
        grader = str(verdict_by).partition("@")[0]
        row.badge(badge_text(f"verdict: {verdict} (by {grader})"), color=VERDICT_COLOURS[verdict])
        st.caption(browse.grader_note(str(verdict_by), md))
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
    grade_badges(
        grades[grades["transcript_id"] == answer["transcript_id"]],
        answer.get("verdict"),
        answer.get("correct_by"),
    )
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
    a_name, b_name = md(a_name), md(b_name)
    with st.expander(
        f"Word-level diff of the replies: {counts['delete']} words only in {a_name}, "
        f"{counts['insert']} only in {b_name}, {counts['equal']} shared"
    ):
        st.caption(f"Red: only in {a_name}; green: only in {b_name}")
        st.code(
            textdiff.as_diff_lines(segments) or "(both replies are empty)", language="diff", wrap_lines=True
        )
