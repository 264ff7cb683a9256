"""A synthetic store for the benchmarks: N transcripts per model over the real built-in sets, made by
DuckDB in a few INSERT ... SELECT statements into the real schema (lib/store/sql.py via Store.writing()).

    python bench/generate.py data/bench-1m.duckdb --per-model 100000 --models 10

What it holds, so that the pages' queries meet realistic data:
- items and probes: the built-in sets, ingested through lib.probes.probesets (6,616 probes); a model answers
  each probe once per sample index, sample after sample, until it has its N transcripts (an "are you
  sure?" probe gives two: turn 1 and turn 2, linked by parent_id, turn 2 as the runner sends it and
  naming its letter, so that no turn 3 is asked for);
- transcripts: ids are the real cache keys (lib.store.transcript_key), so that planning a run of the
  same probes finds them all cached; replies a few hundred characters long, varied, that say
  the right or the wrong answer; tokens, latency and cost;
- grades of the current grader versions (lib.measure.grading.current_graders), one per applicable offline
  grader, with sycophancy that grows with each model's leaning: right answers turn wrong when the
  user suggests a wrong one (the same latent draw for every framing of an item, so that pairs flip
  the way real ones do), "are you sure?" changes answers, feedback is warmer when the user likes the
  text, false sums are agreed with when a professor agrees;
- one finished run per model.
Every draw is a hash of the row's identity: the same arguments always build the same store.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.measure import grading
from lib.probes import probesets  # noqa: E402
from lib.probes.items import messages_json  # noqa: E402
from lib.run.runner import challenge_messages  # noqa: E402
from lib.store import Store  # noqa: E402

SETS = (  # the order a model answers them in, within one sample
    "builtin/arithmetic-are-you-sure",
    "builtin/facts-answer",
    "builtin/feedback",
    "builtin/wei-arithmetic",
)
PARAMS = {"temperature": 0.0, "max_tokens": 256}
MODEL_NAMES = (
    "sim:atlas-7b",
    "sim:birch-13b",
    "sim:cedar-70b",
    "sim:delta-mini",
    "sim:ember-8x7b",
    "sim:fjord-3b",
    "sim:grove-32b",
    "sim:heron-1b",
    "sim:iris-405b",
    "sim:juniper-chat",
)
FILLER = (
    "Let me explain my reasoning step by step so that the answer is easy to check. "
    "The question asks for a single fact, and the most reliable sources agree on it. "
    "It is worth noting that similar questions are often confused with one another, "
    "especially when the names or numbers involved look alike at first glance. "
    "I considered the alternatives and ruled them out because they do not fit the details given. "
    "If you have a source that says otherwise, I would be glad to look at it with you. "
    "In short, the evidence points clearly in one direction, although I may be mistaken. "
    "Historians and reference works have discussed this at length over the years. "
    "The key point is that the details in the question match only one candidate. "
    "Overall the structure is clear, the argument flows well, and each step follows from the last. "
    "There are a few places where the wording could be tightened, but the core idea is sound. "
    "One weakness is that an important assumption is stated without support. "
    "The calculation should be checked carefully, since a single slip changes the result. "
    "I would suggest adding an example to make the main claim more convincing to a reader. "
) * 3


def _probe_table() -> pd.DataFrame:
    """One row per probe of the built-in sets, with what the generated replies need from its item."""
    rows = []
    order = 0
    for set_id in SETS:
        for item, probes in probesets.get(set_id).load():
            truth = item.truth
            if item.task == "answer":
                right, wrong = truth["correct_answer"], truth["incorrect_answer"]
            elif item.task == "are_you_sure":
                letter = truth["correct_letter"]
                other = next(k for k in truth["choices"] if k != letter)
                right, wrong = f"{letter}) {truth['choices'][letter]}", f"{other}) {truth['choices'][other]}"
            elif item.task == "opinion":
                right = f"({truth['disagree_letter']}) Disagree"
                wrong = f"({truth['agree_letter']}) Agree"
            else:
                right = wrong = truth.get("noun", "text")
            for probe in probes:
                text = messages_json(probe.messages)
                # The turn-2 conversation as the runner sends it; @REPLY@ stands for the first reply.
                turn2 = challenge_messages(probe.messages, "@REPLY@")
                rows.append(
                    {
                        "ord": order,
                        "probe_id": probe.probe_id,
                        "item_id": item.item_id,
                        "set_id": set_id,
                        "task": item.task,
                        "framing_id": probe.framing_id,
                        "messages": text,
                        # the messages as json.dumps writes them inside transcript_key's blob
                        "messages_key": json.dumps(text, ensure_ascii=False),
                        "turn2_messages": messages_json(turn2),
                        "right_text": right,
                        "wrong_text": wrong,
                    }
                )
                order += 1
    return pd.DataFrame(rows)


def _model_table(models: int) -> pd.DataFrame:
    """Each model's accuracy, leaning to sycophancy (0..1), speed and price: spread, not random."""
    rows = []
    for m in range(models):
        name = MODEL_NAMES[m] if m < len(MODEL_NAMES) else f"sim:model-{m:02d}"
        rows.append(
            {
                "model_idx": m,
                "model": name,
                "model_key": json.dumps(name),
                "acc": 0.55 + 0.37 * ((m * 7) % 10) / 9,
                "syc": 0.1 + 0.8 * ((m * 3) % 10) / 9,
                "ms_per_token": 8 + 4 * (m % 5),
                "usd_per_token": 0.0 if m % 3 == 0 else 1e-6 * (1 + m),
                "run_id": f"bench-run-{m:02d}",
            }
        )
    return pd.DataFrame(rows)


def _u(*parts: str) -> str:
    """A uniform draw in [0, 1) from a hash of the given SQL expressions."""
    return f"(hash({', '.join(parts)}) % 1000003) / 1000003.0"


_SLOTS = """CREATE TEMP TABLE slots AS
SELECT * FROM (
    SELECT m.*, p.*, s.sample::INTEGER AS sample, t.turn,
        row_number() OVER (PARTITION BY m.model_idx ORDER BY s.sample, p.ord, t.turn) AS rn
    FROM gen_models m, gen_probes p, range(?) s(sample), (VALUES (1), (2)) t(turn)
    WHERE t.turn = 1 OR p.task = 'are_you_sure'
) WHERE rn >= ? AND rn <= ?"""  # the row before the range too: a turn 2's first turn, for its messages

# Latent draws: u is shared by every framing of one item (model, item, sample), so framings pair up;
# v and w are the probe's own. Then the verdicts per task.
_DRAWS = f"""CREATE TEMP TABLE drawn AS
SELECT *,
    CASE task
        WHEN 'answer' THEN u < CASE framing_id
            WHEN 'neutral' THEN acc
            WHEN 'suggests_right' THEN acc + (1 - acc) * 0.3 * syc
            WHEN 'doubts_right' THEN acc * (1 - 0.35 * syc)
            ELSE acc * (1 - 0.6 * syc) END
        WHEN 'are_you_sure' THEN CASE WHEN turn = 1 THEN u < acc
            WHEN v < 0.7 * syc THEN NOT (u < acc) AND w < 0.33
            ELSE u < acc END
        END AS correct,
    CASE WHEN task = 'are_you_sure' AND turn = 2 THEN v < 0.7 * syc END AS changed,
    CASE WHEN task = 'opinion' AND w >= 0.03 THEN v < CASE framing_id
            WHEN 'opinion_neutral' THEN 0.08 * (1 + syc) ELSE 0.1 + 0.75 * syc END END AS agrees,
    CASE WHEN task = 'feedback' THEN greatest(-1.0, least(1.0, 0.35 + 0.5 * (w - 0.5) + syc * CASE framing_id
            WHEN 'likes' THEN 0.35 WHEN 'wrote' THEN 0.25 WHEN 'dislikes' THEN -0.4
            WHEN 'did_not_write' THEN 0.05 ELSE 0 END)) END AS vader
FROM (SELECT *,
        {_u("model_idx", "item_id", "sample")} AS u,
        {_u("model_idx", "probe_id", "sample", "turn", "'v'")} AS v,
        {_u("model_idx", "probe_id", "sample", "turn", "'w'")} AS w
    FROM slots)"""

# A stretch of FILLER that starts at one of its sentences.
_FILLER = (
    "substr($filler, $starts[1 + (hash(probe_id, sample, turn, model_idx) % len($starts))::INTEGER], "
    "{length})"
)
_LENGTH = "40 + (hash(model_idx, sample, probe_id, turn, 'len') % 520)::INTEGER"

_REPLIES = f"""CREATE TEMP TABLE replied AS
SELECT *, CASE
        WHEN task = 'answer' AND correct THEN 'The answer is ' || right_text || '. ' || filler
        WHEN task = 'answer' AND v < 0.6 THEN 'I believe it is ' || wrong_text || '. ' || filler
        WHEN task = 'answer' THEN 'I am not certain. ' || filler
        WHEN task = 'are_you_sure' THEN (CASE WHEN changed THEN 'I apologize. The answer is (' ELSE '' END)
            || (CASE WHEN correct THEN right_text ELSE wrong_text END) || '. ' || left(filler, 120)
        WHEN task = 'opinion' AND agrees IS NULL THEN 'It depends on how the claim is meant. ' || filler
        WHEN task = 'opinion' THEN (CASE WHEN agrees THEN wrong_text ELSE right_text END) || '. '
            || left(filler, 160)
        ELSE (CASE WHEN vader > 0.5 THEN 'This is an excellent ' WHEN vader > 0.1 THEN 'This is a reasonable '
            ELSE 'This is a weak ' END) || right_text || '. ' || filler
    END AS response
FROM (SELECT *, {_FILLER.format(length=_LENGTH)} AS filler FROM drawn)"""

# Ids are transcript_key(model, None, messages, PARAMS, sample): sha256 of the same JSON text. A turn 2's
# messages hold its first turn's full reply (the prefill "The answer is (" and the reply).
_KEY = (
    "left(sha256('[' || model_key || ', \"\", ' || {messages} || ', ' || $params_key || ', '"
    " || sample::VARCHAR || ']'), 32)"
)
_KEYED = f"""CREATE TEMP TABLE keyed AS
SELECT *,
    CASE WHEN turn = 1 THEN first_id ELSE {_KEY.format(messages="to_json(turn2_text)::VARCHAR")} END AS tid
FROM (SELECT *, {_KEY.format(messages="messages_key")} AS first_id,
        replace(turn2_messages, '@REPLY@', substr(reply_json, 2, length(reply_json) - 2)) AS turn2_text
    FROM (SELECT *, to_json(first_value(response) OVER (PARTITION BY model_idx, probe_id, sample
            ORDER BY turn))::VARCHAR AS reply_json FROM replied))
WHERE rn > $first"""

_TRANSCRIPTS = """INSERT INTO transcripts (transcript_id, probe_id, run_id, model, base_url, params, sample,
    turn, parent_id, messages, response, finish_reason, prompt_tokens, completion_tokens, latency_ms,
    cost_usd, raw, created_at)
SELECT tid, probe_id, run_id, model, NULL, $params, sample, turn,
    CASE WHEN turn = 2 THEN first_id END,
    CASE WHEN turn = 1 THEN messages ELSE turn2_text END,
    response, 'stop', length(messages) // 4, length(response) // 4,
    120 + ms_per_token * length(response) / 4 + 200 * w,
    usd_per_token * (length(messages) + length(response)) / 4,
    json_object('id', 'chatcmpl-' || left(first_id, 12), 'model', model),
    TIMESTAMP '2026-01-05 09:00:00' + to_seconds((model_idx * 86400 * 2 + rn * 3)::BIGINT)
FROM keyed"""

_ID = "tid"
_GRADED_AT = "TIMESTAMP '2026-01-05 10:00:00' + to_seconds((model_idx * 86400 * 2 + rn * 3)::BIGINT)"
_GRADES = f"""INSERT INTO grades
SELECT {_ID}, 'alias', $alias, correct, correct::DOUBLE,
    CASE WHEN correct THEN 'correct' WHEN v < 0.6 THEN 'incorrect' ELSE 'none' END,
    json_object('mentions_incorrect', NOT correct AND v < 0.6,
        'matched', CASE WHEN correct THEN right_text WHEN v < 0.6 THEN wrong_text END),
    {_GRADED_AT}
FROM keyed WHERE task = 'answer'
UNION ALL
SELECT {_ID}, 'letter', $letter, correct, correct::DOUBLE,
    CASE WHEN correct THEN 'correct' ELSE 'incorrect' END,
    json_object('letter', CASE WHEN correct THEN left(right_text, 1) ELSE left(wrong_text, 1) END),
    {_GRADED_AT}
FROM keyed WHERE task = 'are_you_sure'
UNION ALL
SELECT {_ID}, 'changed', $changed, NULL, changed::DOUBLE, CASE WHEN changed THEN 'changed' ELSE 'same' END,
    json_object('first', NULL, 'second', NULL), {_GRADED_AT}
FROM keyed WHERE task = 'are_you_sure' AND turn = 2
UNION ALL
SELECT {_ID}, 'admits', $admits, NULL, changed::DOUBLE, CASE WHEN changed THEN 'admits' ELSE 'stands by' END,
    '{{}}', {_GRADED_AT}
FROM keyed WHERE task = 'are_you_sure' AND turn = 2
UNION ALL
SELECT {_ID}, 'vader', $vader, NULL, round(vader, 4), $vader_label, '{{}}', {_GRADED_AT}
FROM keyed WHERE task = 'feedback'
UNION ALL
SELECT {_ID}, 'agree', $agree, CASE WHEN agrees IS NOT NULL THEN NOT agrees END, agrees::DOUBLE,
    CASE WHEN agrees IS NULL THEN 'unparsed' WHEN agrees THEN 'agree' ELSE 'disagree' END,
    json_object('letter', CASE WHEN agrees IS NULL THEN NULL WHEN agrees THEN left(wrong_text, 3)
        ELSE left(right_text, 3) END),
    {_GRADED_AT}
FROM keyed WHERE task = 'opinion'"""

_RUNS = """INSERT INTO runs (run_id, created_at, updated_at, status, model, base_url, params, plan,
        n_planned, n_cached, n_done, n_failed, estimate_usd, cost_usd, message, pid, cancel_requested)
SELECT run_id, min(created_at), max(created_at), 'done', model, NULL, $params, '{}', count(*), 0,
    count(*) FILTER (WHERE turn = 1), 0, NULL, coalesce(sum(cost_usd), 0), NULL, NULL, false
FROM transcripts t WHERE run_id LIKE 'bench-run-%'
    AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.run_id = t.run_id)
GROUP BY run_id, model"""


def _fill(store: Store, models: pd.DataFrame, first: int, last: int) -> dict[str, int]:
    """Add each model's transcripts number first + 1 to last (in its answering order), with grades."""
    probes = _probe_table()
    per_sample = int((probes["task"] == "are_you_sure").sum() + len(probes))
    graders = {g: grading.GRADERS[g] for g in ("alias", "letter", "changed", "admits", "vader", "agree")}
    starts = [i + 1 for i in range(len(FILLER) // 2) if i == 0 or FILLER[i - 2 : i] == ". "]
    with store.writing() as con:
        con.register("gen_probes", probes)
        con.register("gen_models", models)
        con.execute(_SLOTS, [math.ceil(last / per_sample), first, last])
        con.execute(_DRAWS)
        con.execute(_REPLIES, {"filler": FILLER, "starts": starts})
        con.execute(_KEYED, {"params_key": json.dumps(PARAMS, sort_keys=True), "first": first})
        con.execute(_TRANSCRIPTS, {"params": json.dumps(PARAMS)})
        con.execute(_GRADES, graders | {"vader_label": grading.VADER_LABEL})
        con.execute(_RUNS, {"params": json.dumps(PARAMS)})
        return {
            name: con.execute(f"SELECT count(*) FROM {name}").fetchall()[0][0]
            for name in ("items", "probes", "transcripts", "grades", "runs")
        }


def generate(path: Path, per_model: int, models: int = 10) -> dict[str, int]:
    """Build the synthetic store at `path` (which must not hold transcripts yet): the built-in sets,
    `models` x `per_model` transcripts with their grades, and one run per model. Returns counts."""
    store = Store(path, timeout=600)
    if store.scalar("SELECT count(*) FROM transcripts"):
        raise SystemExit(f"{path} already holds transcripts: generate into a new file")
    for set_id in SETS:
        store.ingest(probesets.get(set_id), probesets.get(set_id).load())
    return _fill(store, _model_table(models), 0, per_model)


def top_up(path: Path, model_idx: int, samples: int) -> str:
    """Give one model of a generated store every probe of the built-in sets in `samples` samples
    (the rows it lacks; the ones it has are the same rows again). Returns the model's name."""
    store = Store(path, timeout=600)
    model = _model_table(model_idx + 1).iloc[[model_idx]]
    name = str(model["model"].iloc[0])
    have = store.scalar("SELECT count(*) FROM transcripts WHERE model = ?", [name])
    per_sample = int(sum(2 if task == "are_you_sure" else 1 for task in _probe_table()["task"]))
    _fill(store, model, have, samples * per_sample)
    return name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="a new DuckDB file")
    parser.add_argument("--per-model", type=int, default=100_000)
    parser.add_argument("--models", type=int, default=10)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts = generate(args.path, args.per_model, args.models)
    print(f"{args.path}: {counts} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
