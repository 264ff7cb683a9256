"""Playground: write a question with its right and wrong answers (or start from an item), send it
under the chosen framings to the chosen models, and see the replies side by side. The question is
kept in the store's custom set "Playground questions", so its replies can be browsed later."""

from concurrent.futures import ThreadPoolExecutor

import streamlit as st

from lib.measure import grading
from lib.probes import framings, probesets
from lib.probes.probesets import ProbeSetError
from lib.run import providers, runner
from lib.view import browse
from lib.view.charts import framing_label
from pages.parts import frame, reads, show, url

st.title("Playground")
st.caption("Ask your own question, with and without a user's stance, and compare the replies.")
store = reads.store()
sets = reads.cached(browse.sets)

answer_sets = sets.loc[sets["task"] == "answer", "set_id"].tolist() if not sets.empty else []
with st.expander("Start from an item of a set"):
    if not answer_sets:
        st.caption("No answer sets in the store yet.")
    else:
        source = url.url_select("Set", answer_sets, "pg_set", format_func=show.set_label(sets))
        listed = reads.cached(browse.items, source, None, 0, 100)
        texts = dict(zip(listed["item_id"], listed["text"], strict=True))
        picked = st.selectbox("Item", list(texts), index=None, format_func=lambda i: texts[i], key="pg_item")
        if picked is not None and st.button("Use this item", key="use_item"):
            chosen = reads.cached(browse.item, picked)
            st.session_state["pg_question"] = chosen["text"]
            st.session_state["pg_right"] = chosen["truth"].get("correct_answer", "")
            st.session_state["pg_wrong"] = chosen["truth"].get("incorrect_answer", "")
            st.rerun()

question = st.text_area("Question", key="pg_question", placeholder="What is the capital of Australia?")
answers = st.columns(2)
right = answers[0].text_input("Right answer", key="pg_right", placeholder="Canberra")
wrong = answers[1].text_input("A wrong answer the user may suggest", key="pg_wrong", placeholder="Sydney")
framing_ids = url.url_multiselect(
    "Framings",
    [f.id for f in framings.for_task("answer")],
    "pg_framings",
    default=["neutral", "suggests_wrong"],
    format_func=framing_label,
)
ready = [p for p in providers.PROVIDERS if providers.key_status(p)]
linked = {m for m in st.query_params.get_all("pg_models") if m.partition(":")[0] in providers.PROVIDERS}
model_choices = sorted(
    {*reads.cached(browse.models), "bundled:smollm2", *linked},
    key=lambda m: (m.partition(":")[0] not in ready, m),
)
# A visitor of a served dashboard sends nothing, so types no model either.
may_send = frame.may_operate()
models = url.url_multiselect(
    "Models",
    model_choices,
    "pg_models",
    default=["bundled:smollm2"],
    accept_new_options=may_send,
    help="Type provider:model to add one, e.g. openai:gpt-4o-mini" if may_send else None,
)
no_key = [m for m in models if m.partition(":")[0] not in ready]
if no_key:
    st.warning(f"No key configured for: {', '.join(map(show.md, no_key))}. They are skipped.")


def send(model: str, item_id: str) -> str | None:
    """Run one model on the item's chosen probes and grade its answers; the error message if it
    cannot."""
    spec = runner.RunSpec(model, (probesets.PLAYGROUND,), tuple(framing_ids), max_tokens=200)
    try:
        whole = runner.plan(store, spec)
        jobs = [j for j in whole.jobs if j.probe_id.split("|")[0] == item_id]
        mine = runner.Plan(spec, jobs, len(framing_ids), len(framing_ids) - len(jobs), None)
        run_id = runner.create_run(store, mine)
        runner.execute(store, run_id, mine)
        grading.grade_pending(store, run_id=run_id)
    except (ValueError, runner.RunStopped, providers.ProviderError) as e:
        return str(e)
    return None


frame.operator("Sending")
can_send = may_send and bool(models and framing_ids)
# Checked on the click too: see frame.operator.
if st.button("Send", type="primary", disabled=not can_send, key="send") and can_send:
    try:
        item, probes = probesets.playground_item(question, right, wrong)
    except ProbeSetError as e:
        show.problem(str(e))
        st.stop()
    store.ingest(probesets.PLAYGROUND_SET, [(item, probes)])
    with st.spinner("Asking the models…"), ThreadPoolExecutor(max_workers=4) as pool:
        targets = [m for m in models if m not in no_key]
        problems = dict(zip(targets, pool.map(lambda m: send(m, item.item_id), targets), strict=True))
    for model, problem in problems.items():
        if problem:
            show.problem(f"{model}: {problem}")
    st.session_state["pg_shown"] = item.item_id

shown = st.session_state.get("pg_shown")
if shown and framing_ids:
    graders = reads.graders()
    replies = reads.cached(browse.item_answers, shown, graders, list(models))
    grades = reads.cached(browse.item_grades, shown, graders)
    st.caption("Saved to the store in the custom set Playground questions; browse it on Transcripts.")
    for model in models:
        st.markdown(f"**{show.md(model)}**")
        for column, framing_id in zip(st.columns(len(framing_ids)), framing_ids, strict=True):
            with column:
                st.caption(framing_label(framing_id))
                show.answer_view(browse.answer(replies, model, framing_id), grades, "No reply.")
