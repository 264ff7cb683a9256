"""Overview: how far the measured models bend toward the user, task by task, beside the paper."""

import streamlit as st

from lib.measure import metrics, paper
from lib.view import browse, charts
from pages.parts import filling, live, reads, show

st.title("Sycoscope")
st.caption(
    "How far do language models bend toward what the user says? Each number compares answers to the "
    "same questions with and without the user's stance."
)
store = reads.store()
live.first_run(store)
filling.fill_line(store)
judge = reads.judge()
tables = reads.cached(browse.metric_tables, judge)


def value_text(card: browse.Card, value: float | None = None) -> str:
    value = card.value if value is None else value
    if value is None:
        return "—"
    return f"{value:{'+' if card.signed else ''}.0%}" if card.percent else f"{value:+.2f}"


def card_caption(card: browse.Card) -> str:
    """Which model, the interval, n and the grader behind a card's number (names as text: they come
    from the store, never rendered as markup)."""
    method = f" ({card.note})" if card.note else ""
    interval = f"95% interval {value_text(card, card.low)} to {value_text(card, card.high)}{method}"
    grader = f" Graded by {browse.grader_note(card.grader, show.md)}." if card.grader else ""
    return (
        f"Highest of {card.n_models} model(s): {show.md(card.model or '')} on {show.md(card.set_id or '')}; "
        f"{interval}, n = {card.n}.{grader}"
    )


cards = browse.task_cards(tables)
for start in (0, 3):
    for column, card in zip(st.columns(3), cards[start : start + 3], strict=True):
        with column.container(border=True, height="stretch"):
            st.metric(card.title, value_text(card), help=card.what)
            if card.value is None:
                st.caption(f"{card.what}: nothing measured yet")
            else:
                st.caption(card.what)
                st.caption(card_caption(card))
st.caption(metrics.CORRECT_RULE)
reads.say_if_behind(browse.metric_tables, judge)

st.subheader("Accuracy drop by model and framing")
accuracy = tables["accuracy"]
answer_sets = sorted(accuracy.loc[accuracy["task"] == "answer", "set_id"].unique())
left, right = st.columns([3, 2])
with left:
    set_id = dataset = None
    if answer_sets:
        pick = st.columns(2)
        set_id = pick[0].selectbox("Set", answer_sets, key="ov_set", bind="query-params")
        sources = sorted(
            accuracy.loc[(accuracy["set_id"] == set_id) & accuracy["dataset"].notna(), "dataset"].unique()
        )
        if len(sources) > 1:
            dataset = pick[1].selectbox(
                "Source dataset",
                sources,
                index=None,
                placeholder="The whole set",
                key="ov_source",
                bind="query-params",
                help="The set's items from one source only (e.g. TriviaQA or TruthfulQA)",
            )
    in_set = accuracy[accuracy["set_id"] == set_id]
    chosen = in_set["dataset"].isna() if dataset is None else in_set["dataset"] == dataset
    drops = in_set[chosen & in_set["drop"].notna()]
    st.plotly_chart(reads.figure(charts.accuracy_drop, drops, paper.accuracy_drops()), width="stretch")
    st.caption(
        "Bars: drop = accuracy on the neutral question minus accuracy under the framing, on the same "
        "items (positive: the framing hurts), with 95% intervals (Tango's paired score interval; over "
        "items when a probe was sampled several times). Unclear replies are left out of both. "
        f"Diamonds: {paper.CAVEAT}."
    )
    if not drops.empty:
        st.caption(f"Graded by {browse.grader_note(', '.join(sorted(set(drops['grader']))), show.md)}.")
with right:
    st.markdown("**Measured here against the paper**")
    worst = drops.loc[drops["drop"].astype(float).idxmax()] if not drops.empty else None
    if worst is None:
        st.metric("Largest drop measured here", "—", help="no graded framed answers in this set yet")
    else:
        st.metric(
            f"Largest drop measured here: {show.md(str(worst['model']))}, "
            f"{show.md(charts.framing_label(worst['framing_id']))}",
            f"{worst['drop']:.0%}",
            help=f"95% interval {worst['drop_low']:.0%} to {worst['drop_high']:.0%}, "
            f"{int(worst['n_paired'])} pairs, graded by {show.md(str(worst['grader']))}",
        )
    headline = paper.accuracy_drops().iloc[0]
    st.metric(
        f"As reported in the paper: {show.md(headline['model'])}",
        f"up to {headline['drop']:.0%}",
        help=f"{headline['statement']} ({headline['where']}); {paper.CAVEAT}",
    )

st.markdown("**The paper's headline numbers**")
st.caption(paper.CAVEAT[0].upper() + paper.CAVEAT[1:])
reported = paper.table()
st.dataframe(
    reported.assign(value=reported["value"].mul(100), model=reported["model"].fillna("—"))[
        ["task", "finding", "model", "value", "statement", "where"]
    ],
    hide_index=True,
    width="stretch",
    column_config={"value": st.column_config.NumberColumn("value", format="%.0f%%")},
)

with st.expander("All accuracy figures"):
    st.dataframe(accuracy, hide_index=True, width="stretch")
