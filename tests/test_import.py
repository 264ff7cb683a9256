"""Replies made elsewhere: `python -m lib import FILE` on a real store, as a person runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.paths import REPO
from lib.probes import framings, probesets
from lib.probes.items import assistant, user
from lib.run import imports, runner
from lib.store import Store, sql, transcript_key

FACTS = "builtin/facts-answer"
AYS = "builtin/arithmetic-are-you-sure"
MODEL = "openai:gpt-4o-elsewhere"


@pytest.fixture
def db(tmp_path) -> Path:
    path = tmp_path / "store.duckdb"
    store = Store(path)
    for set_id in (FACTS, AYS):
        probe_set = probesets.get(set_id)
        store.ingest(probe_set, probe_set.load())
    return path


def cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYCOSCOPE_DB": str(db)}
    return subprocess.run(
        [sys.executable, "-m", "lib", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def write(path: Path, *lines: dict | str) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def first_item(set_id: str) -> tuple[str, dict[str, list[dict]]]:
    item, probes = probesets.get(set_id).load()[0]
    return item.item_id, {p.framing_id: list(p.messages) for p in probes}


def transcripts(db: Path) -> dict[tuple[str, int], dict]:
    columns = "probe_id, turn, transcript_id, run_id, model, base_url, params, sample, parent_id, messages"
    with Store(db).reading() as con:
        cursor = con.execute(f"SELECT {columns}, imported FROM transcripts")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]
    return {(r["probe_id"], r["turn"]): r for r in rows}


def ays(item: str, response: str) -> dict:
    return {"item_id": item, "framing": "are_you_sure", "model": MODEL, "response": response}


def key(messages: list[dict], sample: int = 0) -> str:
    return transcript_key(MODEL, None, messages, {"imported": True}, sample)


def test_an_import_stores_the_models_transcripts_and_grades_them(db, tmp_path):
    fact, fact_probes = first_item(FACTS)
    mc, (mc_probe,) = first_item(AYS)[0], first_item(AYS)[1].values()
    question, prefill = mc_probe
    path = write(
        tmp_path / "replies.jsonl",
        {"item_id": fact, "framing": "neutral", "model": MODEL, "response": "Jane Austen wrote it."},
        {"item_id": fact, "framing": "suggests_wrong", "model": MODEL, "response": "Yes, Charlotte Bronte."},
        {**ays(mc, "D)"), "id": "t1"},
        # turn 2 before its parent's line, and turn 3 naming it: the file's order does not matter
        {**ays(mc, "A)"), "parent": "t2", "turn": 3},
        {**ays(mc, "I apologise for the error."), "turn": 2, "id": "t2", "parent": "t1"},
    )
    done = cli(db, "import", str(path))
    assert done.returncode == 0, done.stderr
    assert "5 replies; added 5 transcripts" in done.stdout

    rows = transcripts(db)
    assert len(rows) == 5
    for row in rows.values():
        assert row["imported"] and row["run_id"] is None and row["base_url"] is None
        assert json.loads(row["params"]) == {"imported": True} and row["model"] == MODEL
        assert row["transcript_id"] == key(json.loads(row["messages"]), row["sample"])
    assert json.loads(rows[(f"{fact}|neutral", 1)]["messages"]) == fact_probes["neutral"]
    # "are you sure?": turn 2 and 3 hold the protocol's messages, built from the replies before them
    probe = f"{mc}|are_you_sure"
    turn2 = [question, assistant("The answer is (D)"), user(framings.ARE_YOU_SURE_CHALLENGE)]
    turn3 = [*turn2, assistant("I apologise for the error."), user(framings.FINAL_ANSWER_REQUEST), prefill]
    assert turn2 == runner.challenge_messages([question, prefill], "D)")
    assert [json.loads(rows[(probe, t)]["messages"]) for t in (1, 2, 3)] == [
        [question, prefill],
        turn2,
        turn3,
    ]
    assert rows[(probe, 1)]["parent_id"] is None
    assert rows[(probe, 2)]["parent_id"] == rows[(probe, 1)]["transcript_id"]
    assert rows[(probe, 3)]["parent_id"] == rows[(probe, 2)]["transcript_id"]

    # graded afterwards, and shown as imported answers of that model
    store = Store(db)
    graded = store.query(
        "SELECT DISTINCT t.transcript_id FROM transcripts t JOIN grades g USING (transcript_id)"
    )
    assert len(graded) == 5
    answers = store.query("SELECT framing_id, imported FROM answers WHERE model = ? ORDER BY turn", [MODEL])
    assert {a for a, _ in answers} == {"neutral", "suggests_wrong", "first_answer", "are_you_sure"}
    assert all(imported for _, imported in answers)
    # an imported reply never passes for a sent one: a run of that model still has all to send
    plan = runner.plan(store, runner.RunSpec(MODEL, (FACTS,), ("neutral",), limit=1))
    assert plan.n_cached == 0


def test_importing_twice_adds_nothing(db, tmp_path):
    fact, _ = first_item(FACTS)
    line = {"item_id": fact, "framing": "neutral", "model": MODEL, "response": "Jane Austen."}
    path = write(tmp_path / "r.jsonl", line, {**line, "sample": 1, "response": "Austen."}, line)
    first = imports.import_file(Store(db), path)
    assert (first.lines, first.added) == (3, 2)  # the repeated line is one transcript
    again = cli(db, "import", str(path))
    assert again.returncode == 0, again.stderr
    assert "added 0 transcripts (2 were in the store already)" in again.stdout
    assert Store(db).scalar(sql.COUNT["transcripts"]) == 2
    # the same reply from another file is the same transcript too
    assert imports.import_file(Store(db), write(tmp_path / "other.jsonl", line)).added == 0


def test_a_second_answer_to_the_same_probe_sample_and_turn_is_refused(db, tmp_path):
    fact, _ = first_item(FACTS)
    line = {"item_id": fact, "framing": "neutral", "model": MODEL, "response": "Jane Austen."}
    imports.import_file(Store(db), write(tmp_path / "a.jsonl", line))
    other = {**line, "response": "Charlotte Brontë."}
    with pytest.raises(imports.ImportRefused, match=r"line 1: .*already has an imported answer"):
        imports.import_file(Store(db), write(tmp_path / "b.jsonl", other))
    assert Store(db).scalar(sql.COUNT["transcripts"]) == 1  # it would pair twice with the baseline


def test_given_messages_and_samples_make_their_own_transcripts(db, tmp_path):
    fact, probes = first_item(FACTS)
    own = [{"role": "system", "content": "Be brief."}, *probes["neutral"]]
    path = write(
        tmp_path / "r.jsonl",
        {"item_id": fact, "framing": "neutral", "model": MODEL, "response": "Austen.", "messages": own},
        {"item_id": fact, "framing": "neutral", "model": MODEL, "response": "Austen.", "sample": 3},
    )
    imports.import_file(Store(db), path)
    rows = Store(db).query("SELECT transcript_id, sample FROM transcripts ORDER BY sample")
    assert rows == [(key(own), 0), (key(probes["neutral"], 3), 3)]


def good(item: str) -> dict:
    return {"item_id": item, "framing": "neutral", "model": MODEL, "response": "Jane Austen."}


BAD_LINES = {
    "not JSON": ('{"item_id": "x", ', "not JSON"),
    "not an object": ("[1, 2]", "a JSON object was expected"),
    "missing response": (
        {"item_id": "@fact", "framing": "neutral", "model": MODEL},
        "missing field(s) response",
    ),
    "unknown field": ({**good("@fact"), "respone": "x"}, "unknown field(s) respone"),
    "unknown item": (good("builtin/facts-answer#no-such-item"), "unknown item"),
    "unknown framing": ({**good("@fact"), "framing": "flatters"}, "unknown framing 'flatters'"),
    "framing of another task": ({**good("@fact"), "framing": "likes"}, "has no probe under framing 'likes'"),
    "a sample that is no number": ({**good("@fact"), "sample": "one"}, "sample must be a whole number"),
    "turn 4": ({**good("@fact"), "turn": 4}, "turn must be a whole number from 1 to 3"),
    "bad messages": ({**good("@fact"), "messages": [{"role": "bot", "content": "x"}]}, "messages[0] must be"),
    "a parent that does not exist": (
        {**good("@mc"), "framing": "are_you_sure", "turn": 2, "parent": "nowhere"},
        "parent 'nowhere' is no line's id in this file",
    ),
    "turn 2 without a parent": ({**good("@mc"), "framing": "are_you_sure", "turn": 2}, "needs a parent"),
    "turn 2 of an answer probe": ({**good("@fact"), "turn": 2, "parent": "first"}, "turn 2 is for"),
    "a parent of another model": (
        {**good("@mc"), "framing": "are_you_sure", "turn": 2, "parent": "mc1", "model": "other:model"},
        "not the next turn of parent 'mc1'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_a_bad_line_refuses_the_whole_file_with_its_line_number(db, tmp_path, case):
    fact, mc = first_item(FACTS)[0], first_item(AYS)[0]
    bad, message = BAD_LINES[case]
    if isinstance(bad, dict):
        bad = {
            k: v.replace("@fact", fact).replace("@mc", mc) if isinstance(v, str) else v
            for k, v in bad.items()
        }
    path = write(
        tmp_path / "r.jsonl",
        {**good(fact), "id": "first"},
        {"item_id": mc, "framing": "are_you_sure", "model": MODEL, "response": "B)", "id": "mc1"},
        "",  # a blank line is skipped, and counted
        bad,
    )
    done = cli(db, "import", str(path))
    assert done.returncode == 2
    assert "nothing imported; 1 problem(s)" in done.stderr, done.stderr
    (problem,) = [x.strip() for x in done.stderr.splitlines() if x.strip().startswith("line ")]
    assert problem.startswith("line 4: ") and message in problem, problem
    assert Store(db).scalar(sql.COUNT["transcripts"]) == 0
    assert Store(db).scalar(sql.COUNT["grades"]) == 0


def test_every_problem_is_listed_and_turn_3_needs_a_multiple_choice_item(db, tmp_path):
    fact, mc = first_item(FACTS)[0], first_item(AYS)[0]
    path = write(
        tmp_path / "r.jsonl",
        {**good(fact), "id": "a"},
        {**good(fact), "id": "a", "framing": "doubts_right"},
        {**good(fact), "item_id": "nope"},
        {**good(fact), "response": 3},
        {"item_id": mc, "framing": "first_answer", "model": MODEL, "response": "B)", "id": "m1"},
        {
            "item_id": mc,
            "framing": "are_you_sure",
            "model": MODEL,
            "response": "No.",
            "turn": 3,
            "parent": "m1",
        },
    )
    with pytest.raises(imports.ImportRefused) as refused:
        imports.import_file(Store(db), path)
    assert refused.value.problems == [
        "line 2: id 'a' is already line 1's",
        "line 3: unknown item 'nope' (ingest its set first)",
        "line 4: response must be a string",
        "line 6: not the next turn of parent 'm1' (line 5): turn 3 (parent: turn 1)",
    ]
    assert Store(db).scalar(sql.COUNT["transcripts"]) == 0


def test_an_empty_or_missing_file_is_refused(db, tmp_path):
    empty = write(tmp_path / "empty.jsonl", "")
    assert "no replies" in cli(db, "import", str(empty)).stderr
    missing = cli(db, "import", str(tmp_path / "nowhere.jsonl"))
    assert missing.returncode == 2 and "cannot read the file" in missing.stderr
