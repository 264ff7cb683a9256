"""Compare models: one item under one framing, each chosen model's reply side by side, graded."""

import streamlit as st

from lib.measure import metrics
from lib.view import browse, charts
from lib.view.charts import framing_label
from pages.parts import reads, show, url

ITEMS_LISTED = 50

st.title("Compare models")
store = reads.store()
graders = reads.graders()
sets = reads.cached(browse.sets)
if sets.empty:
    st.info(show.EMPTY_STORE)
    st.stop()

top = st.columns([2, 3])
set_id = url.url_select("Set", sets["set_id"].tolist(), "set", format_func=show.set_label(sets), where=top[0])
task = sets.loc[sets["set_id"] == set_id, "task"].iloc[0]
search = top[1].text_input("Find an item", key="item_q", placeholder="a word of the question or text")
listed = reads.cached(browse.items, set_id, search.strip() or None, 0, ITEMS_LISTED, answered_first=True)
texts = dict(zip(listed["item_id"], listed["text"], strict=True))
linked = url.param("item")
if linked and linked not in texts and (found := reads.cached(browse.item, linked)) is not None:
    texts = {linked: found["text"][:200]} | texts  # the item in the link, even if not listed
if not texts:
    st.info("No item matches." if search else "This set has no items.")
    st.stop()
item_id = url.url_select("Item", list(texts), "item", format_func=lambda i: f"{i} · {texts[i]}")
framing_id = url.url_select("Framing", show.framing_options(task), "framing", format_func=framing_label)
answers = reads.cached(browse.item_answers, item_id, graders)
available = sorted(answers["model"].unique()) if not answers.empty else []
models = st.multiselect(
    "Models",
    available,
    default=available[:4],
    key="models",
    bind="query-params",
    help="Models with an answer to this item",
)

item = reads.cached(browse.item, item_id)
with st.expander("Ground truth"):
    st.json(item["truth"] if item else {}, expanded=True)
if not models:
    st.info(
        "No model has answered this item yet: run probes on this set first."
        if not available
        else "Choose models to compare."
    )
    st.stop()

grades = reads.cached(browse.item_grades, item_id, graders)
probes = reads.cached(browse.item_probes, item_id)
baseline = browse.baseline_of(framing_id)
if framing_id != baseline and baseline in probes and framing_id in probes:
    show.stance(probes[baseline], probes[framing_id])
for column, model in zip(st.columns(len(models)), models, strict=True):
    with column:
        st.markdown(f"**{show.md(model)}**")
        chosen = browse.answer(answers, model, framing_id)
        show.answer_view(chosen, grades, "No answer under this framing.")
        if chosen is not None:
            seconds = (chosen["latency_ms"] or 0) / 1000
            st.caption(f"{chosen['completion_tokens'] or 0} tokens, {seconds:.1f} s")

# The chosen models on the whole set, and on each of its source datasets (TriviaQA and TruthfulQA, say).
CHARTED = {
    "answer": ("accuracy", "drop", "drop_low", "drop_high", "accuracy drop (points)", "n_paired"),
    "are_you_sure": ("are_you_sure", "right_to_wrong_rate", "right_to_wrong_low", "right_to_wrong_high",
                     "first answers right, then wrong", "n_final_known"),
}  # fmt: skip
if task in CHARTED:
    table, value, low, high, axis, n = CHARTED[task]
    rows = reads.cached(browse.metric_tables, reads.judge())[table]
    rows = rows[(rows["set_id"] == set_id) & rows["model"].isin(models)]
    if "framing_id" in rows and task == "answer":
        rows = rows[rows["framing_id"] == framing_id]
    rows = rows.assign(source=rows["dataset"].fillna("whole set"))
    st.subheader("By source dataset")
    title = f"{framing_label(framing_id)}: {axis}, the whole set and each source dataset"
    st.plotly_chart(charts.rate_bars(rows, value, low, high, title, axis, x="source", n=n), width="stretch")
    graded_by = browse.grader_note(", ".join(sorted(set(rows["grader"]))), show.md)
    st.caption(f"95% intervals; n (in the hover) counts decided pairs. Graded by {graded_by}. ")
    reads.say_if_behind(browse.metric_tables, reads.judge())
    st.caption(metrics.CORRECT_RULE)

# The pressure ladder: the chosen models' dose-response together (the Pressure page has one model's).
if task == "ladder":
    st.subheader("The pressure ladder")
    ladders = reads.cached(browse.ladder, reads.judge())
    ladders = ladders[(ladders["set_id"] == set_id) & ladders["model"].isin(models)]
    title = "Accuracy (solid) and siding with the user (dashed) as the pressure rises"
    st.plotly_chart(reads.figure(charts.ladder, ladders, title), width="stretch")
    st.caption(
        "Each model on its complete ladders (items it answered at every rung); 95% intervals, n in the "
        f"hover. Correct by {browse.grader_note(', '.join(ladders['grader']), show.md)}; siding with "
        f"the user by {browse.grader_note(', '.join(ladders['agrees_by']), show.md)}. The numbers, "
        "pairs with the neutral answer included, are on the Pressure page."
    )
