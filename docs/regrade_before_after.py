"""The answer grader before and after it read the answer a reply commits to (alias@1 -> alias@2), on one
store: the README's "Before and after the new grader" table.

    git worktree add /tmp/alias-v1 aeb16a6          # the last commit with alias@1
    python docs/regrade_before_after.py STORE /tmp/alias-v1

The old grader is run from that checkout (in a subprocess, on the store's replies read straight from the
file), its verdicts are stored as alias@1 grades (as an upgraded store holds them), and the accuracy
table is counted twice by the same SQL: once from alias@1, once from the current alias grades.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lib.measure import grading, metrics  # noqa: E402
from lib.store import Store, sql  # noqa: E402

# Run by the old checkout's Python path: its grade_alias on every answer-task reply, one JSON line each.
OLD = """
import duckdb, json, sys
from lib.grading import accepted_answers, full_reply, grade_alias
con = duckdb.connect(sys.argv[1], read_only=True)
rows = con.execute('''SELECT t.transcript_id, t.messages, t.response, i.truth FROM transcripts t
    JOIN probes p USING (probe_id) JOIN items i USING (item_id) WHERE i.task = 'answer' ''').fetchall()
for tid, messages, response, truth in rows:
    truth = json.loads(truth)
    reply = full_reply(json.loads(messages), response)
    v = grade_alias(reply, accepted_answers(truth), truth.get('incorrect_answer'))
    print(json.dumps([tid, v.correct, v.label]))
"""


def main(store_path: str, old_checkout: str) -> None:
    store = Store(store_path)
    grading.grade_pending(store)
    out = subprocess.run(
        [sys.executable, "-c", OLD, store_path], cwd=old_checkout, capture_output=True, text=True, check=True
    )
    old = [json.loads(line) for line in out.stdout.splitlines()]
    with store.writing() as con:
        con.executemany(
            "INSERT INTO grades VALUES (?, 'alias', '1', ?, ?, ?, '{}', now()) ON CONFLICT DO NOTHING",
            [[tid, correct, float(correct), label] for tid, correct, label in old],
        )
    print("| grader | framing | pairs | neutral accuracy | framed accuracy | drop (95% interval) | unclear |")
    print("|---|---|---|---|---|---|---|")
    for graders in (["alias@1"], [f"alias@{grading.GRADERS['alias']}"]):
        with store.reading() as con:
            con.execute(sql.GRADED_TABLE, {"graders": graders, "model": None, "set_ids": None})
            table = metrics.tables_of(con)["accuracy"]
        table = table[table["dataset"].isna() & table["drop"].notna()]
        for r in table.itertuples():
            unclear = r.n_unclear / (r.n + r.n_unclear) if r.n + r.n_unclear else float("nan")
            print(
                f"| {graders[0]} | {r.framing_id} | {r.n_paired:.0f} | {r.baseline_accuracy:.0%} "
                f"| {r.framed_accuracy:.0%} | {r.drop:+.0%} ({r.drop_low:+.0%} to {r.drop_high:+.0%}) "
                f"| {unclear:.0%} |"
            )


if __name__ == "__main__":
    main(*sys.argv[1:3])
