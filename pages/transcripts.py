"""Transcripts: filter the store's answers, page through them, open one beside its neutral baseline."""

import pandas as pd
import streamlit as st

from lib.measure import metrics
from lib.view import browse
from lib.view.charts import framing_label
from pages.parts import reads, show, url

st.title("Transcripts")
store = reads.store()
graders = reads.graders()
sets = reads.cached(browse.sets)
if sets.empty:
    st.info(show.EMPTY_STORE)
    st.stop()
set_name = show.set_label(sets)

top = st.columns([2, 2, 2, 2])
set_id = url.url_select(
    "Set", sets["set_id"].tolist(), "set", format_func=set_name, placeholder="All sets", where=top[0]
)
task = None if set_id is None else sets.loc[sets["set_id"] == set_id, "task"].iloc[0]
model = top[1].selectbox(
    "Model",
    reads.cached(browse.models, set_id),
    index=None,
    placeholder="All models",
    key="model",
    bind="query-params",
)
framing_id = url.url_select(
    "Framing",
    show.framing_options(task),
    "framing",
    format_func=framing_label,
    placeholder="All framings",
    where=top[2],
)
grade = top[3].selectbox(
    "Verdict",
    browse.GRADE_FILTERS,
    index=None,
    placeholder="Any verdict",
    key="grade",
    bind="query-params",
    help=metrics.CORRECT_RULE,
)
row = st.columns([6, 2])
search = row[0].text_input(
    "Search the question and the reply",
    key="q",
    bind="query-params",
    placeholder="a word or phrase, any case",
)
flips = row[1].checkbox(
    "Flips only",
    key="flips",
    bind="query-params",
    help="Framed answers whose verdict is incorrect where the paired neutral answer (same model, parameters "
    "and sample) was correct",
)


def every_turn(turns: list[dict], grades: pd.DataFrame) -> None:
    """An "are you sure?" conversation turn by turn, as text: what each turn asked, the reply, its
    verdict; a turn where the answer changed (a flip, or a flip back) is marked."""
    for turn in turns:
        st.caption(f"Turn {turn['turn']}: {turn['what']}")
        for m in turn["asked"]:
            with st.chat_message("user" if m["role"] == "user" else "assistant"):
                st.text(m["content"])
        with st.chat_message("assistant"):
            st.text(turn["reply"])
        mine = grades[grades["transcript_id"] == turn["transcript_id"]]
        show.grade_badges(mine, turn["verdict"], turn["correct_by"])
        if turn["mark"]:
            st.badge(f"{turn['mark']} at turn {turn['turn']}", icon=":material/swap_vert:", color="violet")


filters = browse.Filters(model, set_id, framing_id, search.strip() or None, flips, grade)
total = reads.cached(browse.count_transcripts, filters, graders)
pages = browse.n_pages(total)
page = st.pagination(pages, key="page", bind="query-params") if pages > 1 else 1
rows = reads.cached(browse.transcripts, filters, graders, page - 1)
matches = "1 answer matches" if total == 1 else f"{total:,} answers match"
st.caption(f"{matches}; page {page} of {pages}. Select a row to open it.")

if rows.empty:
    st.info("No answers match these filters." if total == 0 else "This page is empty.")
else:
    shown = rows.assign(framing=rows["framing_id"].map(framing_label))

    def open_selected() -> None:
        selected = st.session_state["table"].selection.rows
        url.set_param("open", rows.iloc[selected[0]]["transcript_id"] if selected else None)

    st.dataframe(
        shown[
            ["item_id", "model", "framing", "sample", "turn", "text", "response", "verdict", "grade", "flip"]
        ],
        hide_index=True,
        width="stretch",
        on_select=open_selected,
        selection_mode="single-row",
        key="table",
        column_config={
            "text": st.column_config.TextColumn("question", width="medium"),
            "response": st.column_config.TextColumn("reply", width="large"),
            "flip": st.column_config.CheckboxColumn("flip"),
        },
    )

opened = url.param("open")
if opened:
    st.divider()
    view = reads.cached(browse.side_by_side, opened, graders)
    if view is None:
        st.warning("The transcript in the link (open=…) is not in this store.")
    else:
        key, item, answers, grades = view.key, view.item, view.answers, view.grades
        head = st.columns([8, 1])
        title = (key["item_id"], key["model"], framing_label(key["framing_id"]))
        head[0].subheader(" · ".join(show.md(part) for part in title))
        if head[1].button("Close", key="close"):
            url.set_param("open", None)
            st.rerun()
        baseline = browse.baseline_of(key["framing_id"])
        framed_id = key["framing_id"] if key["framing_id"] != baseline else None
        if framed_id is None:
            # A baseline answer was opened: set it beside the first framed answer there is.
            others = answers[(answers["model"] == key["model"]) & (answers["framing_id"] != baseline)]
            framed_id = others["framing_id"].iloc[0] if not others.empty else None
        neutral = browse.answer(answers, key["model"], baseline, int(key["sample"]))
        framed = browse.answer(answers, key["model"], framed_id, int(key["sample"])) if framed_id else None

        with st.expander("Ground truth"):
            st.json(item["truth"] if item else {}, expanded=True)
        left, right = st.columns(2)
        for column, title, chosen in (
            (left, framing_label(baseline), neutral),
            (right, framing_label(framed_id or ""), framed),
        ):
            with column:
                st.markdown(f"**{show.md(title)}**")
                if chosen is framed and neutral is not None:
                    show.stance(neutral["messages"], framed["messages"])
                if chosen is framed and framed_id == "are_you_sure" and framed is not None:
                    every_turn(browse.conversation_turns(answers), grades)
                else:
                    show.answer_view(chosen, grades, "No answer under this framing for this model.")
        if neutral is not None and framed is not None:
            show.reply_diff(
                neutral["response"], framed["response"], framing_label(baseline), framing_label(framed_id)
            )
        meta = answers[answers["transcript_id"] == opened].drop(columns=["messages", "response"])
        with st.expander("Transcript details"):
            st.dataframe(meta.T.set_axis(["value"], axis=1).astype(str), width="stretch")
