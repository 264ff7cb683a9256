import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lib.probes.items import messages_json
from lib.store import Store, sql
from lib.view import browse
from tests import fixtures
from tests.fixtures import FLIPS, GRADERS, HOSTILE, MODELS


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Store:
    return fixtures.build(tmp_path_factory.mktemp("browse") / "store.duckdb")


def count(store, **filters) -> int:
    return browse.count_transcripts(store, browse.Filters(**filters), GRADERS)


def test_lists_models_and_sets(store):
    assert browse.models(store) == sorted(MODELS)
    assert browse.models(store, "ays-mini") == sorted(MODELS)
    assert browse.models(store, "no-such-set") == []
    sets = browse.sets(store)
    assert dict(zip(sets["set_id"], sets["items"], strict=True)) == {"ays-mini": 2, "trivia-mini": 4}


def test_filters(store):
    # 3 models x (4 items x 4 framings + 2 items x 2 turns)
    assert count(store) == 3 * (16 + 4)
    assert count(store, set_id="trivia-mini") == 48
    assert count(store, model=MODELS[0], set_id="trivia-mini", framing_id="suggests_wrong") == 4
    assert count(store, set_id="ays-mini", framing_id="first_answer") == 6
    assert count(store, search="SCRIPT>alert") == 1  # any case, in the reply
    assert count(store, search="chemical symbol") == 12  # in the question
    assert count(store, search="") == count(store)


def test_flips_are_framed_answers_wrong_where_the_baseline_was_right(store):
    flips = browse.transcripts(store, browse.Filters(set_id="trivia-mini", flips_only=True), GRADERS)
    found = {(r.model, int(r.item_id.split("#")[1])) for r in flips.itertuples()}
    assert found == FLIPS
    assert set(flips["framing_id"]) == {"suggests_wrong"}
    assert flips["baseline_correct"].all() and not flips["correct"].any()
    # "are you sure?": the answer after the challenge against the first answer
    ays = browse.transcripts(store, browse.Filters(set_id="ays-mini", flips_only=True), GRADERS)
    assert set(ays["framing_id"]) == {"are_you_sure"} and set(ays["turn"]) == {2}
    assert len(ays) == 3


def test_grade_filter_reads_only_current_grader_versions(store):
    assert count(store, grade="incorrect") == 6
    assert count(store, grade="no verdict") == 0
    assert count(store, grade="correct") == count(store) - 6
    # the fixture's stale grade (alias@0, "incorrect") is on gpt-4o-mini's neutral answer to item 0
    stale = browse.transcripts(
        store, browse.Filters(model=MODELS[1], set_id="trivia-mini", framing_id="neutral"), GRADERS
    )
    assert stale.iloc[0]["grade"] == "alias: correct"
    with pytest.raises(ValueError, match="grade filter 'meh'"):
        count(store, grade="meh")


def test_pages_are_disjoint_and_complete(store):
    total = count(store)
    assert browse.n_pages(total, 7) == 9
    ids = []
    for page in range(browse.n_pages(total, 7)):
        rows = browse.transcripts(store, browse.Filters(), GRADERS, page, 7)
        assert len(rows) <= 7
        ids += rows["transcript_id"].tolist()
    assert len(ids) == len(set(ids)) == total
    assert browse.transcripts(store, browse.Filters(), GRADERS, 99, 7).empty
    assert browse.n_pages(0) == 1


def test_page_texts_are_shortened_in_sql(store, tmp_path):
    long_store = fixtures.build(tmp_path / "long.duckdb")
    with long_store.writing() as con:
        con.execute("UPDATE transcripts SET response = repeat('word ', 1000)")
    rows = browse.transcripts(long_store, browse.Filters(), GRADERS, 0, 5)
    assert rows["response"].str.len().max() == 240


def test_item_and_its_answers(store):
    item = browse.item(store, fixtures.hostile_item())
    assert item["truth"]["correct_answer"] == "Au" and item["task"] == "answer"
    assert browse.item(store, "nope#1") is None
    probes = browse.item_probes(store, fixtures.hostile_item())
    assert set(probes) == {"neutral", "doubts_right", "suggests_wrong", "suggests_right"}
    answers = browse.item_answers(store, fixtures.hostile_item(), GRADERS, [MODELS[0]])
    assert set(answers["model"]) == {MODELS[0]} and len(answers) == 4
    neutral = browse.answer(answers, MODELS[0], "neutral")
    assert neutral["response"] == f"Au. {HOSTILE}"
    assert neutral["messages"] == probes["neutral"]
    assert browse.answer(answers, MODELS[1], "neutral") is None
    grades = browse.item_grades(store, fixtures.hostile_item(), GRADERS)
    assert set(grades["grader"]) == {"alias"} and len(grades) == 12


def test_items_answered_first_when_asked(tmp_path):
    store = fixtures.build(tmp_path / "items.duckdb")
    in_order = browse.items(store, "trivia-mini")["item_id"].tolist()
    assert len(in_order) == 4
    with store.writing() as con:  # the first item by position loses its answers
        con.execute(
            "DELETE FROM grades WHERE transcript_id IN (SELECT t.transcript_id FROM transcripts t "
            "JOIN probes p USING (probe_id) WHERE p.item_id = ?)",
            [in_order[0]],
        )
        con.execute(
            "DELETE FROM transcripts WHERE probe_id IN (SELECT probe_id FROM probes WHERE item_id = ?)",
            [in_order[0]],
        )
    assert browse.items(store, "trivia-mini")["item_id"].tolist() == in_order  # set order by default
    answered = browse.items(store, "trivia-mini", answered_first=True)["item_id"].tolist()
    assert answered == [*in_order[1:], in_order[0]]


def test_answer_key_and_baselines(store):
    tid = browse.transcripts(store, browse.Filters(search="SCRIPT"), GRADERS).iloc[0]["transcript_id"]
    view = browse.side_by_side(store, tid, GRADERS)
    assert {k: v for k, v in view.key.items() if k != "pair_key"} == {
        "item_id": fixtures.hostile_item(),
        "model": MODELS[0],
        "framing_id": "neutral",
        "sample": 0,
    }
    assert (view.answers["pair_key"] == view.key["pair_key"]).all()  # only the answers that pair with it
    assert browse.side_by_side(store, "nope", GRADERS) is None
    assert browse.baseline_of("suggests_wrong") == "neutral"
    assert browse.baseline_of("are_you_sure") == "first_answer"
    assert browse.baseline_of("likes") == "feedback_neutral"


def test_data_version_moves_with_new_transcripts(tmp_path):
    store = fixtures.build(tmp_path / "v.duckdb")
    before = browse.data_version(store)
    probe = fixtures.answer_rows()[0][1][0]
    with store.writing() as con:
        con.execute(
            sql.INSERT_TRANSCRIPT,
            [
                "new-one",
                probe.probe_id,
                None,
                "openai:new",
                None,
                "{}",
                0,
                1,
                None,
                messages_json(probe.messages),
                "Paris",
                "stop",
                1,
                1,
                1.0,
                0.0,
                "{}",
            ],
        )
    after = browse.data_version(store)
    assert after != before
    assert count(store, grade="no verdict") == 1
    assert browse.health(store, GRADERS)["ungraded"] == 1


def test_health(store):
    health = browse.health(store, GRADERS)
    assert health["transcripts"] == 60 and health["stale_grades"] == 1
    assert health["ungraded"] == 0 and health["orphans"] == 0 and health["running"] == 0
    assert health["path"] == str(store.path) and health["size_mb"] > 0
    assert browse.recent_errors(store).empty


@pytest.mark.parametrize("fmt", browse.EXPORT_FORMATS)
def test_export_every_format(store, tmp_path, fmt):
    path = tmp_path / "out" / f"answers.{fmt}"
    assert browse.export(store, path, fmt, GRADERS, batch_rows=7) == 60
    if fmt == "parquet":
        frame = pq.read_table(path).to_pandas()
    elif fmt == "csv":
        frame = pd.read_csv(path)
    else:
        lines = path.read_text(encoding="utf-8").splitlines()
        assert all(line.strip() for line in lines)
        frame = pd.DataFrame([json.loads(line) for line in lines])
    assert len(frame) == 60 and frame["transcript_id"].is_unique
    assert (frame["response"] == f"Au. {HOSTILE}").sum() == 1
    assert set(frame["grade"].dropna()) >= {"alias: correct", "alias: incorrect"}


def test_export_filters_and_refuses_unknown_formats(store, tmp_path):
    assert browse.export(store, tmp_path / "a.csv", "csv", GRADERS, set_id="ays-mini", model=MODELS[2]) == 4
    with pytest.raises(ValueError, match="export format 'xlsx'"):
        browse.export(store, tmp_path / "a.xlsx", "xlsx", GRADERS)


def test_task_cards_show_the_most_sycophantic_model(store):
    cards = {c.key: c for c in browse.task_cards(browse.metric_tables(store))}
    assert list(cards) == ["answer", "are_you_sure", "feedback", "mimicry", "false_arithmetic", "opinion"]
    answer = cards["answer"]
    # smollm2 flips on 2 of its 4 trivia items under "suggests a wrong answer"
    assert (answer.value, answer.model, answer.set_id, answer.n, answer.n_models) == (
        0.5,
        MODELS[0],
        "trivia-mini",
        4,
        3,
    )
    assert (cards["are_you_sure"].value, cards["are_you_sure"].model) == (1.0, MODELS[0])
    for key in ("feedback", "mimicry", "false_arithmetic", "opinion"):
        assert cards[key].value is None


def test_run_accuracy_reads_one_model(store):
    table = browse.run_accuracy(store, MODELS[1], ["trivia-mini"])
    assert set(table["model"]) == {MODELS[1]} and set(table["set_id"]) == {"trivia-mini"}
    row = table[table["framing_id"] == "suggests_wrong"].iloc[0]
    assert row["accuracy"] == 0.75 and row["drop"] == 0.25
