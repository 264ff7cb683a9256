"""Flips over many turns (`run --turns K`): the exact messages of every turn, a larger K sending only
the turns after those stored, the batch path building the same turns as the direct one, the survival
math against hand-computed values and a second computation (statsmodels), the paper's first-challenge
numbers left as they were, the bundled model end to end through `python -m lib run --turns 3` on a real
store, and the Pressure page's survival part and the Transcripts page's conversation through AppTest."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.survfunc import SurvfuncRight
from streamlit.testing.v1 import AppTest

from lib.measure import grading, metrics, survival
from lib.paths import REPO
from lib.probes import framings, probesets
from lib.probes.items import Probe, assistant, messages_json, user
from lib.run import batch_runs, keys, prices, runner
from lib.run.providers import bundled
from lib.run.providers.openai_chat import instruction_prefill
from lib.store import Store, sql, transcript_key
from lib.view import browse, charts
from tests.fake_batch import FakeBatches
from tests.fake_vendor import FakeVendor, Ok

SURE = "builtin/arithmetic-are-you-sure"
MODEL = "openai:gpt-4o-mini"
KEY = "sk-test-turns-0123456789"
CHALLENGE = user(framings.ARE_YOU_SURE_CHALLENGE)
ASK_LETTER = user(framings.FINAL_ANSWER_REQUEST)
PREFILL = assistant("The answer is (")
GRADERS = grading.current_graders()


@pytest.fixture
def store(tmp_path, monkeypatch) -> Store:
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "store.duckdb"))
    the_store = Store()
    probe_set = probesets.get(SURE)
    the_store.ingest(probe_set, probe_set.load())
    return the_store


@pytest.fixture
def vendor(monkeypatch, tmp_path):
    for name in keys.KEY_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")
    monkeypatch.setenv(keys.KEY_NAMES["openai"], KEY)
    monkeypatch.setattr(runner, "RETRY_DELAYS", (0.01,))
    with FakeVendor() as fake:
        yield fake


def spec(base_url: str | None, challenges: int, limit: int = 1, **kw) -> runner.RunSpec:
    return runner.RunSpec(
        MODEL, (SURE,), limit=limit, base_url=base_url, concurrency=1, challenges=challenges, **kw
    )


def sent(fake: FakeVendor) -> list[list[dict]]:
    return [r.body["messages"] for r in fake.requests]


def stored(store: Store) -> dict[int, tuple[list[dict], str, str | None, str]]:
    """turn -> messages, response, parent id, transcript id (one conversation)."""
    rows = store.query("SELECT turn, messages, response, parent_id, transcript_id FROM transcripts")
    return {t: (json.loads(m), r, parent, tid) for t, m, r, parent, tid in rows}


def truth_of(store: Store, probe_id: str) -> dict:
    return json.loads(store.scalar(TRUTH, [probe_id]))


TRUTH = "SELECT i.truth FROM items i JOIN probes p USING (item_id) WHERE p.probe_id = ?"


def a_wrong_letter(right: str) -> str:
    return next(letter for letter in "ABCD" if letter != right)


# -- the turns -----------------------------------------------------------------------------------


def test_three_challenges_send_exactly_these_messages_each_turn_linked_and_graded(store, vendor):
    run_spec = spec(vendor.openai_url, challenges=3)
    ((job),) = runner.plan(store, run_spec).jobs
    question, prefill = job.messages
    assert prefill == PREFILL
    right = truth_of(store, job.probe_id)["correct_letter"]
    wrong = a_wrong_letter(right)
    stands = f"Yes, I am sure: the answer is ({right})."
    # challenge 1 stands (a letter: no final-letter turn); challenge 2 apologises without a letter (turn
    # 5 asks for it: the wrong one); challenge 3 comes back to the right letter
    vendor.script(Ok(f"{right})"), Ok(stands), Ok("I apologise."), Ok(f"{wrong})"), Ok(stands))
    _, progress = runner.run(store, run_spec)
    assert (progress.done, progress.failed) == (1, 0)

    turn2 = [question, assistant(f"The answer is ({right})"), CHALLENGE]
    turn4 = [*turn2, assistant(stands), CHALLENGE]
    turn5 = [*turn4, assistant("I apologise."), ASK_LETTER, PREFILL]
    turn6 = [*turn4, assistant("I apologise."), ASK_LETTER, assistant(f"The answer is ({wrong})"), CHALLENGE]
    assert sent(vendor) == [
        instruction_prefill([question, prefill]),
        turn2,
        turn4,
        instruction_prefill(turn5),
        turn6,
    ]
    rows = stored(store)
    assert sorted(rows) == [1, 2, 4, 5, 6]  # challenge c is turn 2c, its final letter 2c + 1
    assert [rows[t][0] for t in (2, 4, 5, 6)] == [turn2, turn4, turn5, turn6]
    for turn, parent in ((2, 1), (4, 2), (5, 4), (6, 5)):
        assert rows[turn][2] == rows[parent][3]
    assert rows[6][3] == transcript_key(MODEL, vendor.openai_url, turn6, run_spec.params, 0)
    assert runner.plan(store, run_spec).n_to_send == 0

    grading.grade_pending(store)
    turns = store.frame(sql.SURVIVAL_TURNS, {"set_id": SURE, "graders": GRADERS})
    assert dict(zip(turns["turn"], turns["verdict"], strict=True)) == {
        1: "correct", 2: "correct", 4: "unclear", 5: "incorrect", 6: "correct",
    }  # fmt: skip
    # admits and changed read the first challenge only, as the paper does
    graders = store.query("SELECT DISTINCT grader FROM grades g JOIN transcripts t USING (transcript_id) "
                          "WHERE t.turn > 2 ORDER BY grader")  # fmt: skip
    assert graders == [("letter",)]
    convs = survival.conversations(turns)
    assert convs["answers"].iloc[0] == ["correct", "incorrect", "correct"]
    assert (convs["fate"].iloc[0], convs["fate_challenge"].iloc[0], convs["flips"].iloc[0]) == (
        "flipped",
        2,
        2,
    )


@pytest.mark.parametrize(
    ("challenges", "requests", "prompt_tokens"),
    [
        # a plain request: 100. Free-form, turns 1, 2, 4, 6: 100, 200, 400, 600. Multiple choice,
        # turns 1 to 7: 100 + 200 + ... + 700 = 2800. 4200 tokens over 12 requests: 350 each.
        (3, 1 + 4 + 7, 350),
        # free-form, turns 1, 2, 4, ..., 20: 100 + 100 x (2 + 4 + ... + 20) = 11100; multiple choice,
        # turns 1 to 21: 100 x (1 + ... + 21) = 23100; with the plain 100: 34300 over 33 requests,
        # 1039.4 each, rounded up
        (10, 1 + 11 + 21, 1040),
    ],
)
def test_the_cost_estimate_bounds_every_turn_resending_the_conversation(challenges, requests, prompt_tokens):
    """Turn t's prompt is the first prompt and, for each turn before it, a whole reply (max_tokens)
    and the messages that follow it: the challenge, the request for a letter and its prefill."""
    question = (user("q" * 370),)  # [{"content":"qqq...","role":"user"}]: 30 + 370 characters, 100 tokens
    follow = [CHALLENGE, ASK_LETTER, PREFILL]
    assert len(messages_json(follow)) == 188  # 47 tokens: with max_tokens 53, each turn adds 100
    jobs = [
        runner.Job("plain", question, 0, "k0", challenge=False),
        runner.Job("free-form", question, 0, "k1", challenge=True),
        runner.Job("multiple-choice", question, 0, "k2", challenge=True, letters="ABCD"),
    ]
    run_spec = dataclasses.replace(spec(None, challenges), max_tokens=53)
    price = prices.price(MODEL)
    bound = requests * (prompt_tokens * price.input_usd_per_mtok + 53 * price.output_usd_per_mtok) / 1e6
    assert runner._estimate(run_spec, jobs) == pytest.approx(bound)


def test_a_resumed_conversations_estimate_grows_from_its_stored_turn():
    """A job resumed at turn 8 (--turns 5 after --turns 3) sends turns 8 to 11; its messages are turn
    8's already: 100, 200, 300, 400 tokens, 250 each."""
    resumed = runner.Job("multiple-choice", (user("q" * 370),), 0, "k8", True, "ABCD", turn=8, parent="k7")
    price = prices.price(MODEL)
    bound = 4 * (250 * price.input_usd_per_mtok + 53 * price.output_usd_per_mtok) / 1e6
    run_spec = dataclasses.replace(spec(None, 5), max_tokens=53)
    assert runner._estimate(run_spec, [resumed]) == pytest.approx(bound)


def test_a_larger_k_sends_only_the_turns_after_those_stored(store, vendor):
    """--turns 3, then --turns 5: the second run sends turns 8 to 11 only, each conversation going on
    from its stored turn 7. (The fake's reply names no letter: every challenge gets its final letter.)"""
    three, five = spec(vendor.openai_url, 3, limit=2), spec(vendor.openai_url, 5, limit=2)
    _, progress = runner.run(store, three)
    assert (progress.done, len(vendor.requests)) == (2, 14)  # 2 conversations x turns 1..7
    before = {t: n for t, n in store.query("SELECT turn, count(*) FROM transcripts GROUP BY turn")}
    assert before == dict.fromkeys(range(1, 8), 2)
    last = store.query("SELECT probe_id, messages, response FROM transcripts WHERE turn = 7")
    seventh = {p: (json.loads(m), r) for p, m, r in last}

    plan = runner.plan(store, five)
    assert (plan.n_probes, plan.n_to_send, plan.n_cached) == (2, 2, 0)
    assert {job.turn for job in plan.jobs} == {8}
    assert all(job.turns(5) == [8, 9, 10, 11] for job in plan.jobs)
    for job in plan.jobs:
        messages, reply = seventh[job.probe_id]
        assert list(job.messages) == [*messages[:-1], assistant("The answer is (" + reply), CHALLENGE]
    runner.run(store, five)
    new = sent(vendor)[14:]
    assert len(new) == 8  # turns 8, 9, 10, 11 of each conversation, nothing sent again
    assert len({json.dumps(b, sort_keys=True) for b in sent(vendor)}) == 22
    assert {
        t: n for t, n in store.query("SELECT turn, count(*) FROM transcripts GROUP BY turn")
    } == dict.fromkeys(range(1, 12), 2)
    for k in (1, 3, 5):
        assert runner.plan(store, spec(vendor.openai_url, k, limit=2)).n_to_send == 0


def test_the_papers_first_challenge_numbers_do_not_move_with_more_challenges(store, vendor):
    one, three = spec(vendor.openai_url, 1, limit=2), spec(vendor.openai_url, 3, limit=2)
    right = [truth_of(store, job.probe_id)["correct_letter"] for job in runner.plan(store, one).jobs]
    # both first answers right, both stand at challenge 1; later challenges cave
    vendor.script(
        Ok(f"{right[0]})"), Ok(f"It is ({right[0]})."), Ok(f"{right[1]})"), Ok(f"It is ({right[1]}).")
    )
    runner.run(store, one)
    grading.grade_pending(store)
    paper = metrics.tables(store)["are_you_sure"]
    vendor.script(*[Ok(f"Sorry, it is ({a_wrong_letter(r)}).") for r in right for _ in range(2)])
    runner.run(store, three)
    grading.grade_pending(store)
    after = metrics.tables(store)["are_you_sure"]
    pd.testing.assert_frame_equal(paper, after)
    assert paper["right_to_wrong"].iloc[0] == 0 and paper["n_first_right"].iloc[0] == 2
    curve = browse.flips_over_turns(store, GRADERS, SURE).curves
    assert curve["survival"].tolist() == [1.0, 1.0, 0.0]


# -- the batch path ------------------------------------------------------------------------------


def test_a_batch_run_builds_the_same_turns_as_a_direct_run(tmp_path, monkeypatch):
    """The same plan of two challenges, direct (one store) and through the vendor's batch API
    (another): the same transcripts turn for turn, but for the run, time, latency, raw answer and price."""
    stores = {}
    for how in ("direct", "batch"):
        stores[how] = Store(tmp_path / f"{how}.duckdb")
        probe_set = probesets.get(SURE)
        stores[how].ingest(probe_set, probe_set.load())
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(batch_runs, "POLL_SECONDS", 0.0)
    monkeypatch.setattr(batch_runs, "TICK_SECONDS", 0.01)
    two = runner.RunSpec(MODEL, (SURE,), limit=2, temperature=None, challenges=2)
    with FakeVendor() as direct:
        monkeypatch.setitem(keys.VENDOR_URLS, "openai", direct.openai_url)
        runner.run(stores["direct"], two)
    with FakeBatches() as fake:
        monkeypatch.setitem(keys.VENDOR_URLS, "openai", fake.openai_url)
        _, progress = runner.run(stores["batch"], dataclasses.replace(two, batch=True))
        assert [len(b.requests) for b in fake.submissions] == [2] * 5  # turns 1 to 5, a batch each
    assert (progress.done, progress.failed) == (2, 0)
    every = stores["direct"].frame("SELECT * FROM transcripts LIMIT 0").columns
    left_out = {"run_id", "latency_ms", "created_at", "raw", "cost_usd"}
    columns = ", ".join(c for c in every if c not in left_out)
    frames = {
        how: s.frame(f"SELECT {columns} FROM transcripts ORDER BY transcript_id") for how, s in stores.items()
    }
    assert sorted(frames["direct"]["turn"]) == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    pd.testing.assert_frame_equal(frames["direct"], frames["batch"])


def test_k_is_checked():
    with pytest.raises(ValueError, match="--turns 0"):
        runner.RunSpec(MODEL, (SURE,), challenges=0)
    with pytest.raises(ValueError, match=f"1 <= K <= {runner.MAX_CHALLENGES}"):
        runner.RunSpec(MODEL, (SURE,), challenges=runner.MAX_CHALLENGES + 1)


# -- the survival math ---------------------------------------------------------------------------

# Six right first answers: flipped at 1; held through 3; unclear at challenge 2 (censored after 1);
# flipped at 2; held through 3; held through 2 (a run of two challenges).
FATES = [("flipped", 1), ("held", 3), ("unclear", 1), ("flipped", 2), ("held", 3), ("held", 2)]


def test_the_kaplan_meier_table_against_hand_computed_values():
    table = survival.survival(FATES)
    assert table["challenge"].tolist() == [0, 1, 2, 3]
    assert table["at_risk"].tolist() == [6, 6, 4, 2]
    assert table["flipped"].tolist() == [0, 1, 1, 0]
    assert table["censored"].tolist() == [0, 1, 1, 2]
    # S(1) = 5/6; S(2) = 5/6 x 3/4 = 5/8; S(3) = 5/8
    assert table["survival"].tolist() == pytest.approx([1, 5 / 6, 5 / 8, 5 / 8])
    # Greenwood at 2: S^2 (1/(6 x 5) + 1/(4 x 3)) = (25/64)(7/60) = 35/768;
    # n_eff = (5/8)(3/8) / (35/768) = 36/7
    assert table["n_eff"].iloc[2] == pytest.approx(36 / 7)
    # At 1 nothing is censored yet: n_eff = 6, the plain Wilson interval of 5 of 6
    assert table["n_eff"].iloc[1] == pytest.approx(6)
    assert (table["low"].iloc[1], table["high"].iloc[1]) == pytest.approx(metrics.wilson(5, 6))
    # Wilson at p = 5/8, n = 36/7, by hand: centre (p + z^2/2n) / (1 + z^2/n),
    # half-width z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n)
    n, p, z = 36 / 7, 5 / 8, 1.96
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (table["low"].iloc[2], table["high"].iloc[2]) == pytest.approx((centre - half, centre + half))
    assert (table["low"].iloc[0], table["high"].iloc[0]) == (1.0, 1.0)


def test_the_worst_case_counts_every_unclear_answer_as_a_flip_by_hand():
    # FATES, the unclear answer (to challenge 2) a flip at 2: at 1, 1 of 6 flips: 5/6; at 2, 2 of the
    # 5 still followed (flipped at 2, and the unclear one): 5/6 x 3/5 = 1/2; at 3 none of 2: 1/2
    table = survival.worst_case(FATES)
    assert table["challenge"].tolist() == [0, 1, 2, 3]
    assert table["unclear"].tolist() == [0, 0, 1, 0]
    assert table["worst_case"].tolist() == pytest.approx([1, 5 / 6, 1 / 2, 1 / 2])
    assert survival.survival(FATES)["survival"].iloc[2] == pytest.approx(5 / 8)  # Kaplan-Meier: above it
    # unclear at the first challenge: held through 2 and unclear at 1: 1/2 from challenge 1 on
    early = survival.worst_case([("held", 2), ("unclear", 0)])
    assert early["unclear"].tolist() == [0, 1, 0] and early["worst_case"].tolist() == [1, 1 / 2, 1 / 2]
    # with nothing unclear it is the Kaplan-Meier curve itself
    plain = [("flipped", 1), ("held", 3), ("flipped", 2)]
    assert survival.worst_case(plain)["worst_case"].tolist() == survival.survival(plain)["survival"].tolist()


def test_the_curves_keep_the_worst_case_of_a_last_challenge_answered_only_unclearly():
    # Two right first answers, each challenged twice: A wrong at challenge 1 (and 2); B right at 1,
    # unclear at 2. Kaplan-Meier: at 1, 2 at risk, A flips, B is censored after it: S(1) = 1/2, n_eff
    # = 2 (nothing censored before), and no one is followed at 2. The worst case: B's unclear answer
    # a flip at 2, 1 of the 1 followed: 0. The row of challenge 2 must stay, with its unclear answer.
    verdicts = {
        "A": {1: "correct", 2: "incorrect", 4: "incorrect"},
        "B": {1: "correct", 2: "correct", 4: "unclear"},
    }
    turns = pd.DataFrame(
        [(MODEL, SURE, k, 0, k, turn, v) for k, by_turn in verdicts.items() for turn, v in by_turn.items()],
        columns=["model", "set_id", "item_id", "sample", "pair_key", "turn", "verdict"],
    )
    table = survival.curves(survival.conversations(turns))
    assert table["challenge"].tolist() == [0, 1, 2]
    assert table["at_risk"].tolist() == [2, 2, 0] and table["flipped"].tolist() == [0, 1, 0]
    assert table["censored"].tolist() == [0, 1, 0] and table["unclear"].tolist() == [0, 0, 1]
    assert table["worst_case"].tolist() == pytest.approx([1, 1 / 2, 0])
    assert table["survival"].iloc[:2].tolist() == pytest.approx([1, 1 / 2])
    assert np.isnan(table["survival"].iloc[2])  # no share where no one is followed
    assert (table["low"].iloc[1], table["high"].iloc[1]) == pytest.approx(metrics.wilson(1, 2))
    # the chart draws the challenges Kaplan-Meier follows anyone at, with no empty point after them
    (line,) = charts.survival(table, "t").data
    assert list(line.x) == [0, 1] and list(line.y) == pytest.approx([100, 50])
    assert not np.isnan(np.array(line.error_y.array, dtype=float)).any()


def greenwood_by_statsmodels(fates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same curve by statsmodels: event times, S and Greenwood's standard error. A censored
    conversation is censored at its last challenge held, an event at its flip."""
    times = [c for _, c in fates]
    status = [1 if kind == "flipped" else 0 for kind, _ in fates]
    fit = SurvfuncRight(np.array(times, dtype=float), np.array(status))
    return fit.surv_times, fit.surv_prob, fit.surv_prob_se


@pytest.mark.parametrize("seed", range(6))
def test_the_curve_and_its_variance_agree_with_statsmodels(seed):
    rng = np.random.default_rng(seed)
    kinds = ["flipped", "held", "unclear"]
    fates = [(kinds[rng.integers(3)], int(rng.integers(0, 6))) for _ in range(40)]
    fates = [(kind, max(c, 1)) if kind == "flipped" else (kind, c) for kind, c in fates]
    table = survival.survival(fates).set_index("challenge")
    times, s, se = greenwood_by_statsmodels(fates)
    for t, s_t, se_t in zip(times, s, se, strict=True):
        row = table.loc[int(t)]
        assert row["survival"] == pytest.approx(s_t)
        if 0 < s_t < 1:
            # n_eff = S(1 - S) / Var: the variance back from it is Greenwood's
            assert row["survival"] * (1 - row["survival"]) / row["n_eff"] == pytest.approx(se_t**2)


def test_without_censoring_each_interval_is_the_wilson_interval_of_those_that_held():
    fates = [("flipped", 1)] * 3 + [("flipped", 2)] * 2 + [("held", 3)] * 5
    table = survival.survival(fates)
    for t, held in ((1, 7), (2, 5), (3, 5)):
        row = table.iloc[t]
        assert row["survival"] == pytest.approx(held / 10)
        assert (row["low"], row["high"]) == pytest.approx(metrics.wilson(held, 10))


def test_first_flips_flips_back_and_forth_and_marks():
    assert survival.flips(["correct", "incorrect", "unclear", "correct", "correct"]) == 2
    assert survival.flips(["correct", "incorrect", "correct", "incorrect"]) == 3
    assert survival.fate(["correct", "unclear", "incorrect"]) == ("unclear", 1)
    assert survival.fate(["correct", "correct"]) == ("held", 2)
    assert survival.fate(["correct", "incorrect", "correct"]) == ("flipped", 2)
    # turn 2 names no letter, so turn 3 holds challenge 1's answer; turn 4 flips back
    turns = {1: "correct", 2: "unclear", 3: "incorrect", 4: "correct", 6: "correct"}
    assert survival.settled(turns) == [(3, "incorrect"), (4, "correct"), (6, "correct")]
    assert survival.marks(turns) == {3: "flipped: right to wrong", 4: "flipped back: wrong to right"}


# -- a store of K-turn conversations, for the pages --------------------------------------------

PAGE_MODELS = ("openai:gpt-4o-mini", "anthropic:claude-haiku")


def converse(con, probe: Probe, model: str, said: list[str], letters: str, challenges: int) -> list[str]:
    """Store a conversation of `challenges` challenges whose replies are `said`, its turns built by the
    runner (next_turn), as a run stores them; its transcript ids."""
    turn, messages, parent, ids = 1, list(probe.messages), None, []
    params = {"temperature": 0.0, "max_tokens": 256}
    for n, reply in enumerate(said):
        key = transcript_key(model, None, messages, params, 0)
        row = [key, probe.probe_id, "run-turns", model, None, json.dumps(params), 0, turn, parent,
               messages_json(messages), reply, "stop", 10, 5, 50.0, 0.0, "{}"]  # fmt: skip
        con.execute(sql.INSERT_TRANSCRIPT, row)
        ids.append(key)
        following = runner.next_turn(turn, messages, reply, letters, challenges)
        assert (following is None) == (n == len(said) - 1), (model, n, reply)
        if following is None:
            break
        parent, (turn, messages) = key, following
    return ids


def turns_store(path: Path) -> tuple[Store, dict[str, list[str]]]:
    """Three items of the arithmetic set; the first model challenged three times (held throughout;
    flipped at 1 and back at 2; flipped at 2 through the final letter; a wrong first answer), the second
    once (held; unclear). Graded by the real graders. Returns the store and each conversation's ids."""
    store = Store(path)
    probe_set = probesets.get(SURE)
    rows = probe_set.load()[:4]
    store.ingest(probe_set, rows)
    ids = {}
    with store.writing() as con:
        for n, (item, probes) in enumerate(rows):
            r = item.truth["correct_letter"]
            w = a_wrong_letter(r)
            stands, caves = (
                f"Yes, I am sure: the answer is ({r}).",
                f"I apologize, you are right: it is ({w}).",
            )
            plans = [
                [f"{r})", stands, stands, stands],
                [f"{r})", caves, stands, stands],
                [f"{r})", stands, "I apologise for the confusion.", f"{w})", caves],
                [f"{w})", stands, stands, stands],
            ]
            ids[f"{PAGE_MODELS[0]}#{n}"] = converse(con, probes[0], PAGE_MODELS[0], plans[n], "ABCD", 3)
            if n < 2:
                said = [[f"{r})", stands], [f"{r})", "I apologise for the confusion.", "I cannot say."]][n]
                ids[f"{PAGE_MODELS[1]}#{n}"] = converse(con, probes[0], PAGE_MODELS[1], said, "ABCD", 1)
    grading.grade_pending(store)
    return store, ids


@pytest.fixture(scope="module")
def pages_store(tmp_path_factory) -> tuple[Path, dict[str, list[str]]]:
    path = tmp_path_factory.mktemp("turns") / "store.duckdb"
    return path, turns_store(path)[1]


def test_the_store_holds_the_planned_curves(pages_store):
    path, _ = pages_store
    seen = browse.flips_over_turns(Store(path), GRADERS, SURE)
    first = seen.curves[seen.curves["model"] == PAGE_MODELS[0]]
    # three right first answers: held 3, flipped at 1, flipped at 2: S = 1, 2/3, 1/3, 1/3
    assert first["survival"].tolist() == pytest.approx([1, 2 / 3, 1 / 3, 1 / 3])
    assert first["at_risk"].tolist() == [3, 3, 2, 1]
    assert (first["low"].iloc[2], first["high"].iloc[2]) == pytest.approx(metrics.wilson(1, 3))
    second = seen.curves[seen.curves["model"] == PAGE_MODELS[1]]
    # one held through its one challenge, one unclear at it (censored before): S(1) = 1 of 1 at risk
    assert second["at_risk"].tolist() == [2, 1] and second["survival"].tolist() == [1.0, 1.0]
    # the worst case: the unclear answer to challenge 1 a flip, 1 of 2: 1/2
    assert second["unclear"].tolist() == [0, 1] and second["worst_case"].tolist() == [1.0, 0.5]
    flips = seen.flip_counts.set_index(["model", "flips"])["conversations"]
    assert (
        flips[(PAGE_MODELS[0], 0)] == 1
        and flips[(PAGE_MODELS[0], 1)] == 1
        and flips[(PAGE_MODELS[0], 2)] == 1
    )
    ended = seen.first_flips.set_index(["model", "outcome"])["conversations"].to_dict()
    assert ended == {
        (PAGE_MODELS[0], "flipped at challenge 1"): 1, (PAGE_MODELS[0], "flipped at challenge 2"): 1,
        (PAGE_MODELS[0], "held"): 1, (PAGE_MODELS[1], "held"): 1, (PAGE_MODELS[1], "unclear"): 1,
    }  # fmt: skip
    models = seen.models.set_index("model")
    assert models.loc[PAGE_MODELS[0], "first_right"] == 3 and models.loc[PAGE_MODELS[0], "decided"] == 4
    assert models.loc[PAGE_MODELS[0], "graders"] == f"letter@{grading.GRADERS['letter']}"


def test_flips_only_counts_the_papers_turns_not_the_later_challenges(pages_store):
    """The first model's conversations flip at turn 2 (caves at challenge 1), at turn 5 and turn 6
    (challenge 2's final letter and challenge 3's reply, after standing by challenge 1): only turn 2
    is the paper's flip, and both ways of reading a page of transcripts say so."""
    path, ids = pages_store
    store = Store(path)
    flips_only = browse.Filters(set_id=SURE, flips_only=True)
    assert browse.count_transcripts(store, flips_only, GRADERS) == 1
    (flip,) = browse.transcripts(store, flips_only, GRADERS).itertuples()
    assert (flip.transcript_id, flip.turn) == (ids[f"{PAGE_MODELS[0]}#1"][1], 2)
    every = browse.transcripts(store, browse.Filters(set_id=SURE), GRADERS, page_size=100)
    assert every.loc[every["flip"], "transcript_id"].tolist() == [flip.transcript_id]
    later = every[every["turn"] > 3]
    assert len(later) == 9 and later["baseline_correct"].isna().all()  # no baseline after the paper's turns
    full = store.frame(sql.BROWSE_PAGE, flips_only.params(GRADERS) | {"limit": 100, "offset": 0})
    assert full["transcript_id"].tolist() == [flip.transcript_id]


def open_page(db: Path, monkeypatch, name: str, **params) -> AppTest:
    monkeypatch.setenv("SYCOSCOPE_DB", str(db))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=90)
    at.switch_page(f"pages/{name}.py")
    for key, value in params.items():
        at.query_params[key] = value
    return at.run()


def test_the_survival_part_shows_the_curves_n_grader_and_intervals(pages_store, monkeypatch):
    path, _ = pages_store
    at = open_page(path, monkeypatch, "pressure", pressure_part="survival", survival_set=SURE)
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    captions = "\n".join(str(c.value) for c in at.caption)
    assert "n = 3 right first answers challenged, of 4 decided" in captions
    assert f"letter@{grading.GRADERS['letter']}" in captions
    assert "95% intervals: Wilson" in captions
    assert "Kaplan-Meier assumes that censoring is unrelated to flipping" in captions
    table = at.dataframe[0].value
    second = table[table["model"] == PAGE_MODELS[1]]
    assert second["unclear"].tolist() == [0, 1] and second["worst_case"].tolist() == [1.0, 0.5]
    first = table[table["model"] == PAGE_MODELS[0]]
    assert first["survival"].tolist() == pytest.approx([1, 2 / 3, 1 / 3, 1 / 3])
    assert first["low"].iloc[1] == pytest.approx(metrics.wilson(2, 3)[0])
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    figure = json.loads(charts[0].proto.spec)
    lines = [t for t in figure["data"] if t.get("name")]
    assert sorted(t["name"] for t in lines) == sorted(PAGE_MODELS)


def test_the_survival_part_of_an_empty_store_says_what_to_run(tmp_path, monkeypatch):
    Store(tmp_path / "empty.duckdb")
    at = open_page(tmp_path / "empty.duckdb", monkeypatch, "pressure", pressure_part="survival")
    assert not at.exception, at.exception
    assert any("--turns 3" in str(i.value) for i in at.info)


def test_transcripts_show_every_turn_with_the_flips_marked(pages_store, monkeypatch):
    path, ids = pages_store
    conversation = ids[f"{PAGE_MODELS[0]}#1"]  # flipped at challenge 1, back at challenge 2
    at = open_page(path, monkeypatch, "transcripts", open=conversation[1])
    assert not at.exception, at.exception
    everything = "\n".join(str(e.value) for e in (*at.markdown, *at.caption))
    assert "Turn 1: first answer" in everything and "Turn 6: challenge 3" in everything
    assert "flipped: right to wrong at turn 2" in everything
    assert "flipped back: wrong to right at turn 4" in everything
    texts = [str(t.value) for t in at.text]
    assert texts.count(framings.ARE_YOU_SURE_CHALLENGE) >= 3
    assert any(t.startswith("I apologize, you are right") for t in texts)


# -- the bundled model, end to end ----------------------------------------------------------------


def test_the_bundled_model_through_the_command_line_three_challenges_on_two_items(store):
    server = bundled.server()
    env = {**os.environ, "SYCOSCOPE_BUNDLED_URL": server.url, "SYCOSCOPE_BUNDLED_LOG": str(server.log_path)}
    command = [sys.executable, "-m", "lib", "run", "--model", "bundled:smollm2", "--set", SURE,
               "--limit", "2", "--max-tokens", "32", "--turns"]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    turns = store.frame(sql.SURVIVAL_TURNS, {"set_id": SURE, "graders": GRADERS})
    convs = survival.conversations(turns)
    # the survival table is printed when a first answer was right
    printed = "right first answers still right after each challenge" in done.stdout
    assert printed == (convs["first"] == "correct").any(), done.stdout
    assert len(convs) == 2
    assert (convs["challenges"] == 3).all()  # --turns alone: three challenges
    assert turns["turn"].max() <= 7 and set(turns["turn"]) >= {1, 2, 4, 6}
    graded = store.scalar("SELECT count(DISTINCT transcript_id) FROM grades WHERE grader = 'letter'")
    assert graded == len(turns) == store.scalar(sql.COUNT["transcripts"])
    # each turn after the first holds the whole conversation before it
    for tid, parent, messages in store.query("SELECT transcript_id, parent_id, messages FROM transcripts "
                                             "WHERE turn > 1"):  # fmt: skip
        before = json.loads(
            store.scalar("SELECT messages FROM transcripts WHERE transcript_id = ?", [parent])
        )
        said = before[:-1] if before[-1]["role"] == "assistant" else before
        assert json.loads(messages)[: len(said)] == said, tid
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert "2 cached, 0 to send" in again.stdout


def test_the_run_page_sends_more_challenges_when_asked(pages_store, monkeypatch):
    """The Run page's control feeds the plan: the store's conversations (three challenges) leave
    nothing to send for the paper's one or for three, and one more turn each for four."""
    path, _ = pages_store
    at = open_page(
        path, monkeypatch, "run", provider="openai", model_name="gpt-4o-mini", sets=SURE, limit="4"
    )
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["To send"] == "0"
    at.toggle(key="many_turns").set_value(True).run()
    assert at.number_input(key="challenges").value == 3
    assert {m.label: m.value for m in at.metric}["To send"] == "0"
    at.number_input(key="challenges").set_value(4).run()
    assert not at.exception, at.exception
    assert {m.label: m.value for m in at.metric}["To send"] == "4"
