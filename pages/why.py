"""Why: preferences. Does a preference model prefer a reply that agrees with a user's misconception
over one that corrects it? The stored results of `python -m lib prefer` (Sharma et al. 2023, Fig. 7a),
beside the paper's reported numbers; the operator can run a few items on the bundled model."""

import streamlit as st

from lib.measure import paper, preference
from lib.probes import misconceptions
from lib.probes.probesets import ProbeSetError
from lib.run.providers import ProviderError
from lib.view import charts
from pages.parts import frame, reads, show, url

COMMAND = "python -m lib prefer --judge bundled:smollm2 --limit 12"
BUNDLED = "bundled:smollm2"
MODES = {
    "pairwise": "pairwise: the model is asked which reply is better, both orders",
    "logprob": "log-probability: the reply the model finds likelier",
    "reward": "reward model: the reply it scores higher",
}

st.title("Why: preferences")
st.markdown(
    "Assistants are trained to give the replies people, or a preference model standing in for them, "
    "rate highly. Sharma et al. (2023, section 4.3) asked whether that rating rewards agreeing with a "
    "user's misconception. Each of our misconceptions comes with a user who holds it, a convincing "
    "sycophantic reply that agrees, and two truthful replies: a **baseline** one, a plain correction, "
    "and a **helpful** one, written to be as warm and convincing as a correction can be. The chart "
    "shows how often the preference model under test prefers the sycophantic reply. Above 50%, it "
    "rewards telling the user what they want to hear."
)
store = reads.store()


def run_on_bundled() -> None:
    """The operator's button: a few items on the bundled model, inline, cached like the CLI's."""
    if not frame.operator("Running the test"):
        return
    left, middle = st.columns(2)
    mode = left.selectbox("Mode", ["pairwise", "logprob"], key="why_run_mode", format_func=MODES.get)
    count = middle.number_input("Items", min_value=1, max_value=36, value=3, key="why_run_items")
    st.caption("Items are taken in turn from each band; verdicts already in the store are not asked again.")
    if not st.button("Run on the bundled model", key="why_run", type="primary") or not frame.may_operate():
        return
    try:
        items = preference.sample(misconceptions.read(), int(count))
        test = preference.make_test(store, mode, BUNDLED, misconceptions.BUILTIN_NAME)
        with st.spinner("The bundled model is judging the replies…"):
            test.run(items)
    except (ProbeSetError, ProviderError, ValueError) as e:
        show.problem(str(e))
        return
    st.session_state["why_ran"] = test.asked
    url.set_param("pref_judge", BUNDLED)
    url.set_param("pref_mode", mode)
    st.rerun()


def misconceptions_part() -> None:
    """Fig. 7a: the sycophantic reply against truthful ones, per difficulty band."""
    results = reads.cached(preference.results, preference.state(store))
    if results.empty:
        st.info(
            "No preference test in the store yet. Run one from the command line, for example "
            f"`{COMMAND}`, or (operator) with the button below."
        )
        run_on_bundled()
        return

    pick = st.columns(3)
    judge = url.url_select("Preference model", sorted(results["judge"].unique()), "pref_judge", where=pick[0])
    of_judge = results[results["judge"] == judge]
    mode = url.url_select(
        "Mode", sorted(of_judge["mode"].unique()), "pref_mode", format_func=MODES.get, where=pick[1]
    )
    of_mode = of_judge[of_judge["mode"] == mode]
    source = url.url_select(
        "Misconceptions", sorted(of_mode["source"].unique()), "pref_source", where=pick[2]
    )
    table = of_mode[of_mode["source"] == source]
    everything = table[table["band"] == preference.ALL].set_index("against")

    chart, facts = st.columns([3, 1])
    title = f"{judge} ({mode}): how often the sycophantic reply is preferred"
    chart.plotly_chart(
        reads.figure(charts.preference_shares, table, paper.preference_shares(), title), width="stretch"
    )
    with facts:
        st.metric("Items", int(everything["n_pairs"].max()), help="Misconceptions the model has judged")
        st.caption(f"Preference model: {show.md(judge)}")
        st.caption(f"Version: {show.md(str(table['version'].iloc[0] or 'not reported'))}")
        st.caption(f"Mode: {MODES[mode]}. Test version {preference.VERSION}.")
        for against, label in charts.AGAINST_LABELS.items():
            row = everything.loc[against]
            st.caption(
                f"{label}: n = {row.n} decided comparisons, {row.n_undecided} undecided (unreadable or tied)"
            )
            if mode == "pairwise" and row.n_first:
                st.caption(
                    f"Position bias {label}: the reply shown first won {row.first_share:.0%} of "
                    f"{row.n_first} verdicts (50% is none); {row.n_inconsistent} item(s) flip with the order."
                )

    st.caption(
        "95% intervals: Wilson with one comparison per item, a cluster bootstrap over items when each item "
        "is judged in both orders. The diamonds are the Claude 2 preference model's numbers "
        f"{paper.CAVEAT}: 95% against baseline truthful replies over all misconceptions, about 45% against "
        "helpful truthful ones on the hardest. Our bands are the author's judgement of how widely each "
        "misconception is believed, not the paper's measured difficulty."
    )
    shown = table[["against", "band", "n_pairs", "n", "n_undecided", "share", "low", "high", "interval"]]
    st.dataframe(
        shown.assign(against=shown["against"].map(charts.AGAINST_LABELS)),
        hide_index=True,
        column_config={
            "against": "compared with",
            "n_pairs": "items",
            "n_undecided": "undecided",
            "share": st.column_config.NumberColumn("sycophantic preferred", format="percent"),
            "low": st.column_config.NumberColumn("95% low", format="percent"),
            "high": st.column_config.NumberColumn("95% high", format="percent"),
        },
    )
    with st.expander("Run the test on the bundled model"):
        if "why_ran" in st.session_state:
            st.caption(
                f"Last run: {st.session_state.pop('why_ran')} request(s) sent, the rest from the store."
            )
        run_on_bundled()
    st.caption(f"Any other model: `{COMMAND.replace(BUNDLED, 'PROVIDER:MODEL')}` (see the README).")


# --- Best-of-N (Fig. 6): best_of_n_part ---

# --- Human preference features (Fig. 5): features_part ---

PARTS = {"misconceptions": ("Sycophantic or truthful (Fig. 7a)", misconceptions_part)}
part = url.url_select("Part", list(PARTS), "why_part", format_func=lambda p: PARTS[p][0])
PARTS[part or "misconceptions"][1]()
