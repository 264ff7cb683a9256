"""Every error a person can fix reaches the command line as one line "error: ..." and exit status 2,
never a traceback: a secrets file that is not TOML, a price table that is not one, a gold file that is
not JSON lines, a file that is not there, a path that cannot be written. Through `python -m lib` where
the file can be named on the command line; through main() where the file is the project's own (its
path patched to a bad copy in this process only)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib import cli, paths
from lib.paths import REPO
from lib.probes import probesets
from lib.run import keys, prices
from lib.store import Store

FACTS = "builtin/facts-answer"
RUN = ["run", "--model", "openai:gpt-4o-mini", "--set", FACTS, "--limit", "1"]


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    """A store holding the facts set, named by SYCOSCOPE_DB; no vendor key in the environment, so that
    nothing could be sent even if a check came too late."""
    path = tmp_path / "store.duckdb"
    facts = probesets.get(FACTS)
    Store(path).ingest(facts, facts.load())
    monkeypatch.setenv("SYCOSCOPE_DB", str(path))
    for name in keys.KEY_NAMES.values():
        monkeypatch.delenv(name, raising=False)
    return path


def one_line(stderr: str, *says: str) -> str:
    """The one "error: ..." line, last on stderr (a run's progress bars may stand before it), saying
    each of `says`."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr
    for part in says:
        assert part in errors[0], errors[0]
    return errors[0]


def main(capsys, *args: str) -> str:
    """main(args) in this process: it must return 2; its stderr."""
    assert cli.main(list(args)) == 2
    return capsys.readouterr().err


def python_m_lib(db: Path, *args: str) -> str:
    """`python -m lib args` on the store: it must exit with 2; its stderr."""
    env = {k: v for k, v in os.environ.items() if k not in keys.KEY_NAMES.values()}
    done = subprocess.run(
        [sys.executable, "-m", "lib", *args],
        cwd=REPO,
        env={**env, "SYCOSCOPE_DB": str(db)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


def test_a_secrets_file_that_is_not_toml(db, tmp_path, monkeypatch, capsys):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('OPENAI_API_KEY = "sk-not-closed\n', encoding="utf-8")
    monkeypatch.setattr(keys, "SECRETS", secrets)
    line = one_line(main(capsys, *RUN), str(secrets), "not valid TOML")
    assert "sk-not-closed" not in line  # the file's text (a key) is never quoted


def test_a_price_table_that_is_not_one(db, tmp_path, monkeypatch, capsys):
    table = tmp_path / "prices.csv"
    table.write_text(",".join(prices.COLUMNS) + "\nopenai:gpt-4o-mini,cheap,0.6,0.5,\n", encoding="utf-8")
    monkeypatch.setattr(prices, "PRICES", table)
    one_line(main(capsys, *RUN), f"{table}, line 2", "'cheap' is not a number")


def test_a_gold_file_that_is_not_json_lines(db, tmp_path, monkeypatch, capsys):
    gold = tmp_path / "gold"
    gold.mkdir()
    (gold / "mine.jsonl").write_text('{"id": "a"\n', encoding="utf-8")
    monkeypatch.setattr(paths, "GOLD", gold)
    one_line(main(capsys, "graders"), "mine.jsonl:1", "not JSON")


def test_a_gold_folder_without_files(db, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "GOLD", tmp_path)
    one_line(main(capsys, "graders"), "no gold files", str(tmp_path))


def test_an_import_file_that_is_not_there(db, tmp_path):
    missing = tmp_path / "replies.jsonl"
    stderr = python_m_lib(db, "import", str(missing))
    # a refusal lists each problem on a line of its own under the one "error:" line
    assert "Traceback" not in stderr and stderr.startswith(f"error: {missing}: nothing imported")
    assert "No such file or directory" in stderr


def test_an_export_path_that_cannot_be_written(db, tmp_path):
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file, not a folder\n", encoding="utf-8")
    out = not_a_folder / "answers.csv"
    one_line(python_m_lib(db, "export", "--format", "csv", "--out", str(out)), str(not_a_folder))


def test_an_ingest_folder_that_is_not_there(db, tmp_path):
    folder = tmp_path / "nowhere"
    one_line(python_m_lib(db, "ingest", "sycophancy-eval/answer", "--from", str(folder)), str(folder))
