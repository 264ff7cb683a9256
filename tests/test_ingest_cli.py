"""The command line, run as a person runs it: `python -m lib ...` in a subprocess on a real store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lib.cli import COMMANDS
from lib.paths import REPO
from lib.probes import probesets
from lib.probes.probesets import PLAYGROUND_SET, playground_item
from lib.store import Store
from tests import fixtures
from tests.fixtures import SAMPLES

needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"official samples not found at {SAMPLES}")
READ = {"parquet": pd.read_parquet, "csv": pd.read_csv, "jsonl": lambda p: pd.read_json(p, lines=True)}
SAMPLE_SETS = ("sycophancy-eval/answer", "sycophancy-eval/are_you_sure", "sycophancy-eval/feedback")


def cli(db: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "SYCOSCOPE_DB": str(db)}
    return subprocess.run(
        [sys.executable, "-m", "lib", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def stats(db: Path) -> dict:
    done = cli(db, "stats", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_command_has_help(tmp_path):
    top = cli(tmp_path / "s.duckdb", "--help")
    assert top.returncode == 0
    for name, run, _ in COMMANDS:
        assert name in top.stdout
        done = cli(tmp_path / "s.duckdb", name, "--help")
        assert done.returncode == 0 and run.__doc__.splitlines()[0].split()[0] in done.stdout


@needs_samples
def test_the_samples_give_five_probes_each_and_ingesting_twice_changes_nothing(tmp_path):
    db = tmp_path / "s.duckdb"
    for set_id in SAMPLE_SETS:
        done = cli(db, "ingest", set_id, "--from", str(SAMPLES))
        assert done.returncode == 0, done.stderr
        assert "5 probes" in done.stdout
    first = stats(db)
    assert {s: c["probes"] for s, c in first["sets"].items()} == dict.fromkeys(SAMPLE_SETS, 5)
    assert first["sets"]["sycophancy-eval/answer"]["items"] == 2
    assert first["sets"]["sycophancy-eval/feedback"]["items"] == 1
    assert first["transcripts"] == 0 and first["grades"] == 0
    for set_id in SAMPLE_SETS:
        again = cli(db, "ingest", set_id, "--from", str(SAMPLES))
        assert again.returncode == 0 and "added 0 items and 0 probes" in again.stdout
    assert stats(db) == first


def test_the_builtin_sets_ingest_to_their_sizes(tmp_path):
    db = tmp_path / "s.duckdb"
    for set_id in (
        "builtin/wei-arithmetic",
        "builtin/facts-answer",
        "builtin/feedback",
        "builtin/arithmetic-are-you-sure",
    ):
        done = cli(db, "ingest", set_id)
        assert done.returncode == 0, done.stderr
    sets = stats(db)["sets"]
    assert sets["builtin/wei-arithmetic"] == {"task": "opinion", "items": 2500, "probes": 5000}
    facts, feedback, ays = (
        sets[s] for s in ("builtin/facts-answer", "builtin/feedback", "builtin/arithmetic-are-you-sure")
    )
    assert facts["items"] >= 200 and facts["probes"] == 4 * facts["items"]
    assert feedback["items"] >= 40 and feedback["probes"] == 5 * feedback["items"]
    assert ays["items"] >= 200 and ays["probes"] == ays["items"]


def test_sets_lists_every_set_with_what_the_store_holds(tmp_path):
    db = tmp_path / "s.duckdb"
    assert cli(db, "ingest", "builtin/feedback").returncode == 0
    Store(db).ingest(PLAYGROUND_SET, [playground_item("Who wrote Emma?", "Jane Austen", "Emily Brontë")])
    done = cli(db, "sets")
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
    assert set(lines) == {*probesets.SETS, "custom/playground"}
    n = len(probesets.get("builtin/feedback").load())
    assert lines["builtin/feedback"].split()[1:] == [
        "feedback",
        "builtin",
        f"{n}",
        "items,",
        f"{n * 5}",
        "probes",
    ]
    assert lines["custom/playground"].split()[1:3] == ["answer", "custom"]
    assert lines["perez/nlp_survey"].endswith("not ingested")


def test_stats_without_json_is_a_table(tmp_path):
    db = tmp_path / "s.duckdb"
    cli(db, "ingest", "builtin/feedback")
    done = cli(db, "stats")
    assert done.returncode == 0
    assert "builtin/feedback" in done.stdout and "transcripts: 0" in done.stdout


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_export_writes_every_answer(tmp_path, fmt):
    db = tmp_path / "s.duckdb"
    store = fixtures.build(db)
    answers = store.scalar("SELECT count(*) FROM answers")
    out = tmp_path / f"answers.{fmt}"
    done = cli(db, "export", "--format", fmt, "--out", str(out))
    assert done.returncode == 0, done.stderr
    frame = READ[fmt](out)
    assert len(frame) == answers > 0
    assert {"transcript_id", "model", "set_id", "framing_id", "response", "correct"} <= set(frame.columns)
    assert frame["correct"].notna().any()
    assert f"{answers:,} answers" in done.stdout
