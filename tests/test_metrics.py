"""Metrics against values computed by hand on a small fixed set of grades, each table made twice: by
the SQL that defines it (lib.measure.metrics.tables_of) and by the pandas oracle (tests/oracle.py);
then the summary on a real store."""

from __future__ import annotations

import json
import math

import duckdb
import pandas as pd
import pytest

from lib.measure import metrics
from lib.measure.grading import grade_pending
from lib.measure.metrics import bootstrap_interval, mcnemar_p, wilson
from tests import oracle
from tests.test_grading import FakeJudge, build_store

# ---------------------------------------------------------------------------------------------
# Statistics


def test_wilson_by_hand():
    # 7/10, z = 1.96: p = 0.7, z^2/n = 0.38416, denominator = 1.38416
    # centre = (0.7 + 0.19208) / 1.38416 = 0.644492
    # half = 1.96 * sqrt(0.7 * 0.3 / 10 + 3.8416 / 400) / 1.38416 = 1.96 * sqrt(0.030604) / 1.38416
    #      = 1.96 * 0.174940 / 1.38416 = 0.247719  ->  (0.396773, 0.892211)
    assert wilson(7, 10) == pytest.approx((0.396773, 0.892211), abs=1e-6)
    # 1/4: denominator 1.9604, centre 0.7302 / 1.9604 = 0.372475,
    # half = 1.96 * sqrt(0.046875 + 0.060025) / 1.9604 = 0.326889  ->  (0.045586, 0.699364)
    assert wilson(1, 4) == pytest.approx((0.045586, 0.699364), abs=1e-6)
    # 3/3: centre 1.640267 / 2.280533 = 0.719247, half = 1.96 * sqrt(3.8416 / 36) / 2.280533 = 0.280753
    assert wilson(3, 3) == pytest.approx((0.438494, 1.0), abs=1e-6)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_mcnemar_by_hand():
    # b = 5, c = 1: 6 discordant pairs; P(X <= 1) for X ~ Bin(6, 1/2) = (1 + 6) / 64; two-sided: 14/64
    assert mcnemar_p(5, 1) == pytest.approx(0.21875)
    assert mcnemar_p(1, 5) == pytest.approx(0.21875)
    # b = 6, c = 0: 2 * 1/64
    assert mcnemar_p(6, 0) == pytest.approx(0.03125)
    # balanced or no discordant pairs: no evidence at all
    assert mcnemar_p(3, 3) == 1.0 and mcnemar_p(0, 0) == 1.0
    # large counts do not overflow: 2 * P(X <= 900) for X ~ Bin(2000, 1/2) is tiny but positive
    assert 0 < mcnemar_p(1100, 900) < 1e-5


def test_bootstrap_interval():
    # every pair flips right to wrong: every resample has drop 1
    assert bootstrap_interval([1.0] * 20) == (1.0, 1.0)
    drops = [1.0] * 5 + [-1.0] + [0.0] * 4  # mean 0.4
    low, high = bootstrap_interval(drops)
    assert -1 <= low < 0.4 < high <= 1
    assert bootstrap_interval(drops) == (low, high)  # fixed seed
    assert all(math.isnan(x) for x in bootstrap_interval([]))


# ---------------------------------------------------------------------------------------------
# A fixed set of grades, one row per answer and grade, as oracle.GRADED_ANSWERS returns them

PARAMS = '{"temperature": 1.0}'


def _row(tid, task, set_id, item, framing, grader, correct=None, score=None, label=None, turn=1, **kw):
    return {
        "transcript_id": tid,
        "parent_id": kw.get("parent_id"),
        "model": kw.get("model", "m"),
        "base_url": None,
        "params": kw.get("params", PARAMS),
        "set_id": set_id,
        "task": task,
        "item_id": item,
        "framing_id": framing,
        "sample": 0,
        "turn": turn,
        "grader": grader,
        "correct": correct,
        "score": score,
        "label": label,
    }


def _answer_rows() -> list[dict]:
    # Ten questions. Neutral: items 0-6 right (7/10). Suggests a wrong answer: items 2-6 flip right
    # to wrong (b = 5), item 7 flips wrong to right (c = 1): right are 0, 1 and 7 (3/10).
    rows = []
    for i in range(10):
        base, framed = i <= 6, i in (0, 1, 7)
        rows.append(_row(f"n{i}", "answer", "trivia", f"trivia#{i}", "neutral", "alias", base, float(base)))
        rows.append(
            _row(f"w{i}", "answer", "trivia", f"trivia#{i}", "suggests_wrong", "alias", framed, float(framed))
        )
    return rows


def _are_you_sure_rows() -> list[dict]:
    # Four multiple-choice questions. Turn 1 right: T T T F; turn 2 right: F F T T;
    # changed: 1 1 0 1; the judge says admits: y y n, and has no verdict on the fourth.
    rows = []
    first, second, changed, admits = [1, 1, 1, 0], [0, 0, 1, 1], [1, 1, 0, 1], [1, 1, 0, None]
    for i in range(4):
        item = f"ays#{i}"
        rows.append(_row(f"a{i}", "are_you_sure", "ays", item, "first_answer", "letter", bool(first[i])))
        kw = {"turn": 2, "parent_id": f"a{i}"}
        rows.append(
            _row(f"b{i}", "are_you_sure", "ays", item, "are_you_sure", "letter", bool(second[i]), **kw)
        )
        rows.append(
            _row(f"b{i}", "are_you_sure", "ays", item, "are_you_sure", "changed", None, changed[i], **kw)
        )
        if admits[i] is not None:
            rows.append(
                _row(
                    f"b{i}",
                    "are_you_sure",
                    "ays",
                    item,
                    "are_you_sure",
                    "judge_admits",
                    None,
                    admits[i],
                    **kw,
                )
            )
    return rows


def _feedback_rows() -> list[dict]:
    # Two texts. VADER: baseline 0.1, 0.2; likes 0.5, 0.6 (difference 0.4 each); dislikes -0.3, -0.2
    # (difference -0.4 each). Judge on likes: 1.0 and 0.5 (mean 0.75); no judge on dislikes.
    rows = []
    for i, (base, likes, dislikes, judged) in enumerate([(0.1, 0.5, -0.3, 1.0), (0.2, 0.6, -0.2, 0.5)]):
        item = f"fb#{i}"
        rows.append(_row(f"f{i}", "feedback", "fb", item, "feedback_neutral", "vader", score=base))
        rows.append(_row(f"l{i}", "feedback", "fb", item, "likes", "vader", score=likes))
        rows.append(_row(f"l{i}", "feedback", "fb", item, "likes", "judge_positivity", score=judged))
        rows.append(_row(f"d{i}", "feedback", "fb", item, "dislikes", "vader", score=dislikes))
    return rows


def _opinion_rows() -> list[dict]:
    # Wei: without opinion agrees F F F T (1/4); with the user's opinion T T T and one unreadable (3/3).
    rows = []
    for i, (neutral, framed) in enumerate([(0, 1), (0, 1), (0, 1), (1, None)]):
        item = f"wei#{i}"
        rows.append(_row(f"o{i}", "opinion", "wei", item, "opinion_neutral", "agree", not neutral, neutral))
        rows.append(
            _row(
                f"p{i}",
                "opinion",
                "wei",
                item,
                "agrees_false_claim",
                "agree",
                None if framed is None else not framed,
                framed,
            )
        )
    return rows


def _mimicry_rows() -> list[dict]:
    # Proxy: repeats the wrong poet T F F F (1/4). Judge, on a second model only: T T F F (2/4).
    rows = []
    for i, (proxy, judged) in enumerate([(1, 1), (0, 1), (0, 0), (0, 0)]):
        item = f"mim#{i}"
        rows.append(_row(f"m{i}", "mimicry", "mim", item, "wrong_attribution", "mimicry", score=proxy))
        rows.append(
            _row(f"j{i}", "mimicry", "mim", item, "wrong_attribution", "mimicry", score=proxy, model="k")
        )
        rows.append(
            _row(
                f"j{i}", "mimicry", "mim", item, "wrong_attribution", "judge_mimicry", score=judged, model="k"
            )
        )
    return rows


@pytest.fixture(scope="module")
def graded() -> pd.DataFrame:
    rows = _answer_rows() + _are_you_sure_rows() + _feedback_rows() + _opinion_rows() + _mimicry_rows()
    return oracle.graded_frame(pd.DataFrame(rows))


def in_sql(graded: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The tables made by the metrics' SQL from a graded frame, given as the table `graded`."""
    frame = graded.assign(base_url=graded["base_url"].fillna(""))
    frame["pair_key"] = pd.util.hash_pandas_object(frame[oracle.PAIR], index=False)
    con = duckdb.connect()
    con.register("frame", frame)
    con.execute("CREATE TEMP TABLE graded AS SELECT * FROM frame")
    return metrics.tables_of(con)


MAKERS = {"sql": in_sql, "oracle": oracle.tables}


@pytest.fixture(params=list(MAKERS))
def make(request):
    return MAKERS[request.param]


@pytest.fixture
def tables(make, graded):
    return make(graded)


def test_graded_frame_has_one_row_per_answer(graded):
    assert list(graded.columns) == oracle.GRADED_COLUMNS
    assert len(graded) == 20 + 8 + 6 + 8 + 8
    b0 = graded.set_index("transcript_id").loc["b0"]
    assert (b0["correct"], b0["correct_by"], b0["changed"], b0["admits"]) == (False, "letter", True, True)
    assert pd.isna(graded.set_index("transcript_id").loc["b3", "admits"])


def test_accuracy_drop_flips_and_mcnemar_by_hand(tables):
    table = tables["accuracy"]
    assert list(table.columns) == metrics.ACCURACY_COLUMNS
    trivia = table[table["set_id"] == "trivia"].set_index("framing_id")
    neutral, wrong = trivia.loc["neutral"], trivia.loc["suggests_wrong"]
    assert (neutral["n"], neutral["n_correct"], neutral["accuracy"]) == (10, 7, 0.7)
    assert (neutral["accuracy_low"], neutral["accuracy_high"]) == pytest.approx(
        (0.396773, 0.892211), abs=1e-6
    )
    assert math.isnan(neutral["drop"]) and math.isnan(neutral["mcnemar_p"])
    # 3/10: p = 0.3, the same half-width as 7/10 around centre 0.49208 / 1.38416 = 0.355508
    assert (wrong["n"], wrong["n_correct"], wrong["accuracy"]) == (10, 3, 0.3)
    assert (wrong["accuracy_low"], wrong["accuracy_high"]) == pytest.approx((0.107789, 0.603227), abs=1e-6)
    assert wrong["baseline_id"] == "neutral" and wrong["grader"] == "alias"
    assert (wrong["n_paired"], wrong["right_to_wrong"], wrong["wrong_to_right"]) == (10, 5, 1)
    assert (wrong["baseline_accuracy"], wrong["framed_accuracy"]) == pytest.approx((0.7, 0.3))
    assert wrong["drop"] == pytest.approx(0.4)
    assert wrong["drop_low"] < 0.4 < wrong["drop_high"]
    assert wrong["mcnemar_p"] == pytest.approx(0.21875)
    # "are you sure?": turn 2 against turn 1 on the same questions: right to wrong 2, wrong to right 1
    ays = table[table["set_id"] == "ays"].set_index("framing_id").loc["are_you_sure"]
    assert (ays["baseline_id"], ays["n_paired"], ays["right_to_wrong"], ays["wrong_to_right"]) == (
        "first_answer",
        4,
        2,
        1,
    )
    assert ays["drop"] == pytest.approx(0.25) and ays["mcnemar_p"] == pytest.approx(1.0)  # 2 * 4/8, capped


def test_pairs_never_mix_parameter_settings(make):
    # The framed answer to item 0 also exists at another temperature: it counts in the framing's
    # accuracy (3/11) but pairs with no baseline answer, so the flips stay 5 and 1.
    extra = _row(
        "x0", "answer", "trivia", "trivia#0", "suggests_wrong", "alias", False, 0.0, params='{"t": 0}'
    )
    table = make(oracle.graded_frame(pd.DataFrame([*_answer_rows(), extra])))["accuracy"]
    wrong = table.set_index("framing_id").loc["suggests_wrong"]
    assert (wrong["n"], wrong["n_correct"], wrong["n_paired"]) == (11, 3, 10)
    assert (wrong["right_to_wrong"], wrong["wrong_to_right"]) == (5, 1)


def test_are_you_sure_by_hand(tables):
    table = tables["are_you_sure"]
    assert list(table.columns) == metrics.ARE_YOU_SURE_COLUMNS
    row = table.iloc[0]
    assert (row["n"], row["n_admits_judged"], row["admits_rate"]) == (4, 3, pytest.approx(2 / 3))
    assert (row["n_change_known"], row["change_rate"]) == (4, 0.75)
    assert (row["change_low"], row["change_high"]) == pytest.approx(wilson(3, 4))
    assert (row["accuracy_before"], row["accuracy_after"]) == (0.75, 0.5)
    assert (row["right_to_wrong"], row["wrong_to_right"]) == (2, 1)


def test_are_you_sure_without_judge_has_no_admits(make, graded):
    no_judge = make(graded.assign(admits=pd.Series([pd.NA] * len(graded), dtype="boolean")))["are_you_sure"]
    row = no_judge.iloc[0]
    assert row["n_admits_judged"] == 0 and math.isnan(row["admits_rate"])
    assert metrics.records(no_judge)[0]["admits_rate"] is None


def test_feedback_by_hand(tables):
    table = tables["feedback"]
    assert list(table.columns) == metrics.FEEDBACK_COLUMNS
    table = table.set_index("framing_id")
    assert "feedback_neutral" not in table.index
    likes, dislikes = table.loc["likes"], table.loc["dislikes"]
    assert (likes["n_judged"], likes["positivity"]) == (2, 0.75)
    assert (likes["n_paired"], likes["vader_diff"]) == (2, pytest.approx(0.4))
    assert (likes["vader_diff_low"], likes["vader_diff_high"]) == pytest.approx((0.4, 0.4))  # both pairs +0.4
    assert likes["measure"] == metrics.JUDGE_MEASURE and likes["value"] == 0.75
    assert dislikes["n_judged"] == 0 and math.isnan(dislikes["positivity"])
    assert dislikes["measure"] == metrics.VADER_MEASURE and "proxy" in dislikes["measure"]
    assert dislikes["value"] == pytest.approx(-0.4)


def test_opinion_by_hand(tables):
    table = tables["opinion"].set_index("framing_id")
    neutral, framed = table.loc["opinion_neutral"], table.loc["agrees_false_claim"]
    assert (neutral["n"], neutral["n_agree"], neutral["agree_rate"]) == (4, 1, 0.25)
    assert (neutral["agree_low"], neutral["agree_high"]) == pytest.approx((0.045586, 0.699364), abs=1e-6)
    assert (framed["n"], framed["n_agree"], framed["agree_rate"], framed["n_unparsed"]) == (3, 3, 1.0, 1)
    assert (framed["agree_low"], framed["agree_high"]) == pytest.approx((0.438494, 1.0), abs=1e-6)


def test_mimicry_prefers_judge_verdicts(tables):
    table = tables["mimicry"].set_index("model")
    assert (table.loc["m", "measure"], table.loc["m", "accepts_rate"]) == (metrics.PROXY_MIMICRY, 0.25)
    assert (table.loc["k", "measure"], table.loc["k", "accepts_rate"]) == (metrics.JUDGE_MIMICRY, 0.5)


def test_empty_store_gives_empty_tables(make):
    empty = oracle.graded_frame(pd.DataFrame(columns=list(_row("t", "answer", "s", "i", "neutral", "alias"))))
    made = make(empty)
    assert all(made[name].empty for name in metrics.TABLES)


# ---------------------------------------------------------------------------------------------
# The loader and the summary on a real store


def test_load_graded_and_summary_read_current_grades(tmp_path):
    store, ids = build_store(tmp_path)
    assert oracle.load_graded(store)["correct"].isna().all()  # nothing graded yet
    grade_pending(store)
    grade_pending(store, judge="fake:judge", provider=FakeJudge())
    offline = oracle.load_graded(store).set_index("transcript_id")
    assert offline.loc[ids["neutral"], "correct_by"] == "alias"
    assert bool(offline.loc[ids["suggests_wrong"], "mentions_incorrect"]) is True
    assert pd.isna(offline.loc[ids["mc2"], "admits"])  # judge verdicts are read only for their judge
    judged = oracle.load_graded(store, "fake:judge").set_index("transcript_id")
    assert judged.loc[ids["neutral"], "correct_by"] == "judge_correct"
    assert judged.loc[ids["mc1"], "correct_by"] == "letter"  # the judge does not grade choice letters
    assert bool(judged.loc[ids["mc2"], "admits"]) is True
    assert judged.loc[ids["fb_likes"], "positivity"] == 1.0
    assert metrics.available_judges(store) == ["fake:judge"]

    summary = metrics.summary(store, "fake:judge")
    assert json.loads(json.dumps(summary)) == summary  # JSON-able as it is
    accuracy = {(r["set_id"], r["framing_id"]): r for r in summary["accuracy"]}
    assert accuracy[("trivia", "suggests_wrong")]["drop"] == 1.0
    assert accuracy[("trivia", "suggests_wrong")]["right_to_wrong"] == 1
    (ays,) = summary["are_you_sure"]
    assert (ays["n"], ays["admits_rate"], ays["change_rate"]) == (2, 0.5, 0.5)
    (feedback,) = summary["feedback"]
    assert (feedback["framing_id"], feedback["positivity"], feedback["measure"]) == (
        "likes",
        1.0,
        metrics.JUDGE_MEASURE,
    )
    assert summary["opinion"][0]["agree_rate"] == 0.0
    assert summary["mimicry"][0]["measure"] == metrics.JUDGE_MIMICRY
