"""The benchmarks' synthetic store holds what it says, and the metric tables (lib.measure.metrics.tables,
what the Overview reads) count its resolved verdicts."""

import json

import pandas as pd
import pytest

from bench import generate
from lib.measure import grading, metrics
from lib.store import Store, sql, transcript_key
from lib.view import browse


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Store:
    path = tmp_path_factory.mktemp("bench") / "store-10k.duckdb"
    counts = generate.generate(path, per_model=1000, models=10)
    assert counts["transcripts"] == 10_000 and counts["runs"] == 10
    return Store(path)


def test_generator_makes_the_requested_counts(small):
    per_model = small.query("SELECT model, count(*) FROM transcripts GROUP BY model")
    assert len(per_model) == 10 and {n for _, n in per_model} == {1000}
    # every transcript has one grade per applicable offline grader, of the current version
    ungraded = small.scalar(
        "SELECT count(*) FROM transcripts t WHERE NOT EXISTS (SELECT 1 FROM grades g "
        "WHERE g.transcript_id = t.transcript_id AND list_contains(?, g.grader || '@' || g.grader_version))",
        [grading.current_graders()],
    )
    assert ungraded == 0
    # each "are you sure?" turn 2 follows its turn 1 of the same probe and sample
    orphans = small.scalar(
        "SELECT count(*) FROM transcripts t WHERE turn = 2 AND NOT EXISTS (SELECT 1 FROM transcripts p "
        "WHERE p.transcript_id = t.parent_id AND p.probe_id = t.probe_id AND p.sample = t.sample)"
    )
    assert orphans == 0 and small.scalar("SELECT count(*) FROM transcripts WHERE turn = 2") > 0


def test_first_turns_carry_their_real_cache_keys(small):
    rows = small.query(
        "SELECT transcript_id, model, messages, params, sample FROM transcripts WHERE turn = 1"
    )
    for tid, model, messages, params, sample in rows[:: len(rows) // 50]:
        assert tid == transcript_key(model, None, json.loads(messages), json.loads(params), sample)


def test_top_up_completes_whole_samples(tmp_path):
    path = tmp_path / "store.duckdb"
    generate.generate(path, per_model=500, models=2)
    model = generate.top_up(path, 1, samples=1)
    store = Store(path)
    from lib.run import runner

    plan = runner.plan(store, runner.RunSpec(model, generate.SETS, samples=1))
    assert plan.n_probes > 6000 and plan.n_to_send == 0


@pytest.fixture(scope="module")
def every_task(tmp_path_factory) -> Store:
    """Two models over a whole sample of the built-in sets (every task there), plus judge verdicts."""
    path = tmp_path_factory.mktemp("bench") / "store.duckdb"
    generate.generate(path, per_model=7000, models=2)
    store = Store(path)
    version = {g: grading.grader_version(g, "fake:judge") for g in grading.JUDGE_GRADERS}
    with store.writing() as con:
        # the judge disagrees with the alias grader on a third, and judges turn 2 and framed feedback
        con.execute(
            """INSERT INTO grades SELECT transcript_id, 'judge_correct', ?,
                    correct <> (hash(transcript_id) % 3 = 0), NULL, 'judge', '{}', now()
                FROM grades WHERE grader = 'alias'""",
            [version["judge_correct"]],
        )
        con.execute(
            """INSERT INTO grades SELECT transcript_id, 'judge_admits', ?, NULL, score, 'judge', '{}', now()
                FROM grades WHERE grader = 'changed' AND hash(transcript_id) % 4 > 0""",
            [version["judge_admits"]],
        )
        con.execute(
            """INSERT INTO grades SELECT g.transcript_id, 'judge_positivity', ?, NULL,
                    (hash(g.transcript_id) % 3) / 2.0, 'judge', '{}', now()
                FROM grades g JOIN answers a USING (transcript_id)
                WHERE g.grader = 'vader' AND a.framing_id <> 'feedback_neutral'""",
            [version["judge_positivity"]],
        )
    return store


# The resolved verdict counted straight from the grades: the judge's where chosen, else the offline one.
_DIRECT = """SELECT a.model, a.framing_id, count(*) FILTER (WHERE coalesce(j.correct, o.correct)) AS n_correct
    FROM answers a LEFT JOIN grades o ON o.transcript_id = a.transcript_id AND o.grader = 'alias'
        AND o.grader_version = ?
    LEFT JOIN grades j ON j.transcript_id = a.transcript_id AND j.grader = 'judge_correct'
        AND j.grader_version = ?
    WHERE a.set_id = 'builtin/facts-answer' GROUP BY ALL"""


@pytest.mark.parametrize("judge", [None, "fake:judge"])
def test_every_table_fills_and_counts_the_resolved_verdicts(every_task, judge):
    made = metrics.tables(every_task, judge)
    for name in ("accuracy", "are_you_sure", "feedback", "opinion"):  # no mimicry in the built-in sets
        assert len(made[name]) > 0, name
    judge_version = grading.grader_version("judge_correct", judge) if judge else ""
    direct = every_task.query(_DIRECT, [grading.GRADERS["alias"], judge_version])
    accuracy = made["accuracy"]
    whole = accuracy[(accuracy["set_id"] == "builtin/facts-answer") & accuracy["dataset"].isna()]
    counted = {(r.model, r.framing_id): r.n_correct for r in whole.itertuples()}
    assert counted == {(model, framing): n for model, framing, n in direct}
    if judge:
        assert made["feedback"]["n_judged"].gt(0).all()
        assert made["are_you_sure"]["n_admits_judged"].gt(0).all()
        assert all(g.startswith("judge_correct@") for g in whole["grader"])


@pytest.mark.parametrize(
    "filters",
    [
        browse.Filters(),
        browse.Filters(set_id="builtin/facts-answer", framing_id="suggests_wrong"),
        browse.Filters(model=generate.MODEL_NAMES[1], search="apologize"),
    ],
)
def test_transcript_pages_read_only_their_grades_yet_equal_the_full_query(every_task, filters):
    graders = grading.current_graders()
    for page in (0, 1):
        params = filters.params(graders) | {"limit": browse.PAGE_SIZE, "offset": page * browse.PAGE_SIZE}
        full = every_task.frame(sql.BROWSE_PAGE, params)
        shown = browse.transcripts(every_task, filters, graders, page)
        assert len(full) > 0
        pd.testing.assert_frame_equal(shown, full, check_dtype=False)
    assert browse.count_transcripts(every_task, filters, graders) == every_task.scalar(
        sql.BROWSE_COUNT, filters.params(graders)
    )
    # the store's flips show up on the unfiltered pages of framed answers
    if filters.framing_id:
        flips = every_task.frame(sql.BROWSE_PAGE, filters.params(graders) | {"limit": 10_000, "offset": 0})
        assert flips["flip"].any()
