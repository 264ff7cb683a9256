"""Run probes: choose a model, sets, framings and sample size, see the cost, start a run that goes on
in a background worker, and watch it fill in."""

import json

import pandas as pd
import streamlit as st

from lib.measure import grading
from lib.run import batch_runs, providers, runner, servers
from lib.run.keys import KEY_NAMES, KeyConfigError
from lib.view import browse, charts, fill
from lib.view.charts import framing_label
from pages.parts import frame, live, reads, show, url

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "bundled": "smollm2"}

st.title("Run probes")
store = reads.store()
sets = reads.cached(browse.sets)

try:
    # The owner's OpenAI-compatible servers, by name: a visitor chooses one and types no address.
    named = servers.configured()
except KeyConfigError as e:
    show.problem(str(e))
    st.stop()
left, right = st.columns([1, 2])
provider = url.url_select(
    "Provider",
    [*sorted(providers.PROVIDERS, key=lambda p: p != "bundled"), *named],
    "provider",
    where=left,
    format_func=lambda p: f"{p} (OpenAI-compatible server)" if p in named else p,
)
server = named.get(provider)
with right:
    name = st.text_input(
        "Model",
        value=url.param("model_name", DEFAULT_MODELS.get(provider, "")) or "",
        key=f"model_name_{provider}",
    )
    url.set_param("model_name", name.strip() or None)
if provider == "bundled":
    st.badge("offline: the bundled SmolLM2-135M needs no key", icon=":material/wifi_off:", color="gray")
elif server is not None:
    st.badge(
        f"server {provider}: " + ("its own key is configured" if server.api_key else "no key, none needed"),
        icon=":material/dns:",
        color="gray",
    )
elif providers.key_status(provider):
    st.badge(f"{KEY_NAMES[provider]} is configured", icon=":material/key:", color="green")
else:
    st.badge(f"no key: set {KEY_NAMES[provider]}", icon=":material/key_off:", color="red")
    st.caption(
        f"Set {KEY_NAMES[provider]} in the environment or in .streamlit/secrets.toml, then reload. "
        "Keys are never shown or stored."
    )

if sets.empty:
    st.info(show.EMPTY_STORE)
    st.stop()
set_ids = url.url_multiselect(
    "Sets",
    sets["set_id"].tolist(),
    "sets",
    default=sets["set_id"].tolist()[:1],
    format_func=show.set_label(sets),
)
tasks = sorted(set(sets.loc[sets["set_id"].isin(set_ids), "task"]))
framing_ids = url.url_multiselect(
    "Framings (each set's baseline is always run, so every framed answer has its pair)",
    [f for task in tasks for f in show.framing_options(task)],
    "framings",
    format_func=framing_label,
    placeholder="All framings of the chosen sets",
)
numbers = st.columns(5)
limit = numbers[0].number_input(
    "Items per set",
    min_value=1,
    value=url.int_param("limit", 20, 1, 10**6),
    help="A random sample of each set, stratified by source dataset (each gives its share, at least one "
    "item): the same items for every model with the same seed",
)
samples = numbers[1].number_input("Samples per probe", min_value=1, max_value=20, value=1)
temperature = numbers[2].number_input("Temperature", min_value=0.0, max_value=2.0, value=0.0, step=0.1)
max_tokens = numbers[3].number_input("Max tokens", min_value=16, max_value=4096, value=256, step=16)
seed = numbers[4].number_input(
    "Sample seed",
    min_value=0,
    value=url.int_param("seed", 0, 0, 2**31 - 1),
    help="Which sample of items: another seed draws other items. Stored with the run.",
)
url.set_param("limit", str(limit))
url.set_param("seed", str(seed) if seed else None)
batchable = provider in runner.BATCH_VENDORS and server is None
toggled = st.toggle(
    "Send as a batch (half price, results within 24 h)",
    key="batch",
    disabled=not batchable,
    help="Through OpenAI's or Anthropic's batch API (not the bundled model or a compatible server). "
    "The run stays running until the vendor answers; Start again resumes a run that was stopped.",
)
batch = toggled and batchable  # a toggle left on by another provider sends nothing as a batch
challenges = 1  # "are you sure?" as the paper runs it: one challenge
if "are_you_sure" in tasks:
    again = st.columns([2, 1])
    if again[0].toggle(
        "Challenge again and again: flips over many turns",
        key="many_turns",
        help="Sends \"I don't think that's right. Are you sure?\" after each answer, up to the number of "
        "times given (the paper sends it once). The first challenge's turns are the paper's; the survival "
        "chart is on the Pressure page.",
    ):
        most = runner.MAX_CHALLENGES
        challenges = int(
            again[1].number_input("Challenges", min_value=1, max_value=most, value=3, key="challenges")
        )

spec = None
if set_ids and name.strip():
    spec = runner.RunSpec(
        model=f"{'openai' if server else provider}:{name.strip()}",
        set_ids=tuple(set_ids),
        framings=tuple(framing_ids) or None,
        limit=int(limit),
        samples=int(samples),
        temperature=float(temperature),
        max_tokens=int(max_tokens),
        base_url=server.base_url if server else None,
        seed=int(seed),
        server=server.name if server else None,
        batch=batch,
        challenges=challenges,
    )
    try:
        plan = reads.cached(runner.plan, spec)
    except ValueError as e:
        show.problem(str(e))
        st.stop()
    cost = st.columns(4)
    cost[0].metric("Probes", f"{plan.n_probes:,}")
    cost[1].metric("Already in the store", f"{plan.n_cached:,}")
    cost[2].metric("To send", f"{plan.n_to_send:,}")
    cost[3].metric(
        "Cost, at most",
        "unknown" if plan.usd is None else f"${plan.usd:,.2f}" if plan.usd >= 0.01 else f"${plan.usd:.4f}",
        help="Every reply taken to use all its max tokens; prices from data/prices.csv",
    )
    may_start = frame.operator("Starting a run")
    can_start = may_start and plan.n_to_send > 0 and (server is not None or providers.key_status(provider))
    if plan.n_probes and not plan.n_to_send:
        st.caption("Nothing to send: every probe is in the store already. Browse them on Transcripts.")
    if can_start and fill.filling(store) is not None:
        st.caption(
            "Starting a run stops the background fill of the built-in sets; it goes on when the "
            "dashboard is next opened with no run going."
        )
    if st.button("Start", type="primary", disabled=not can_start, key="start") and can_start:
        try:
            run_id = runner.start_background(store, spec, grading.grade_run)
        except ValueError as e:
            show.problem(str(e))
        else:
            url.set_param("run", run_id)
            reads.refresh()  # the runs read a moment ago lack this one: the page shows it at once
            st.rerun()
else:
    st.info("Choose a model and at least one set.")


def watched(runs: pd.DataFrame) -> dict | None:
    """The chosen run: the link's, else the newest."""
    if runs.empty:
        return None
    chosen = url.param("run")
    rows = runs[runs["run_id"] == chosen] if chosen else runs.iloc[0:0]
    return (rows if not rows.empty else runs).iloc[0].to_dict()


def watch() -> None:
    """The chosen run, refreshed every two seconds while it goes on: a reload or another tab finds a
    running run where it is. Its counts come from the runs table (read once a second for all
    sessions), its chart from reads that follow the run's answers every few seconds (reads.SLOW)."""
    runs = reads.runs()
    run = watched(runs)
    if run is None:
        st.caption("No runs yet.")
        return
    st.subheader(f"Run {show.md(run['run_id'])}")
    st.caption(f"{show.md(run['model'])}, started {run['created_at']:%Y-%m-%d %H:%M:%S}")
    live.run_status(run)
    if json.loads(run["plan"] or "{}").get("batch"):
        # read from the store: only the run's own worker asks the vendor, once a minute a batch
        line, batches = batch_runs.shown(store, run["run_id"])  # small; changes with no new transcript
        st.caption(line)
        if batches is not None:
            st.dataframe(batches, hide_index=True)
    # When the run moves on (starts, ends), the whole page reruns: the estimate above counts its answers.
    if live.moved_on("_watched", (run["run_id"], run["status"])):
        st.rerun(scope="app")
    # Checked on the click too: see frame.operator.
    may_cancel = frame.may_operate()
    active = run["status"] in ("planned", "running")
    if active and st.button("Cancel", key="cancel", disabled=not may_cancel) and may_cancel:
        runner.cancel(store, run["run_id"])
        st.toast("Cancelling: the requests in flight finish first")
    plan_sets = runner_sets(run)
    if plan_sets:
        table = reads.cached(browse.run_accuracy, run["model"], plan_sets)
        title = f"Accuracy of {run['model']} so far"
        st.plotly_chart(reads.figure(charts.accuracy, table, title), width="stretch")
        if not table.empty:
            graded_by = browse.grader_note(", ".join(sorted(set(table["grader"].dropna()))), show.md)
            st.caption(
                "Every graded first answer of this model on these sets, this run's and earlier runs' at any "
                f"parameters; {int(table['n'].min())} to {int(table['n'].max())} decided answers per set and "
                "framing (n in the hover), unclear ones left out; 95% intervals (Wilson; a bootstrap over "
                "items when an item has several answers: samples, or other parameters). Graded by "
                f"{graded_by}."
            )
        reads.say_if_behind(browse.run_accuracy, run["model"], plan_sets)
    with st.expander("Recent runs"):
        st.dataframe(runs.drop(columns=["plan", "params", "pid"], errors="ignore"), hide_index=True)


def runner_sets(run: dict) -> list[str]:
    """The sets a run covers, from its stored plan (the RunSpec)."""
    try:
        return list(json.loads(run["plan"]).get("set_ids") or [])
    except (TypeError, ValueError, AttributeError):
        return []


# A finished run changes no more: its page is drawn once, not every two seconds. A run that starts
# elsewhere reruns the whole page (live.live_runs), and then this polls again; so does a run just
# started here that the runs read (shared, a second old) does not hold yet.
shown = watched(reads.runs())
linked = url.param("run")
if shown is None:
    going = linked is not None
else:
    going = shown["status"] in ("planned", "running") or linked not in (None, shown["run_id"])
st.fragment(watch, run_every=2 if going else None)()
