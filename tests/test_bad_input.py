"""Bad input: each case gives one clear message naming the file, the line and the key, exit status 2
and no traceback at the command line, and leaves the store exactly as it was."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from lib.probes import probesets
from lib.probes.probesets import ProbeSetError, Remote
from lib.probes.probesets.builtin import read_facts
from lib.store import Store
from tests.fixtures import SAMPLES
from tests.servers import serve
from tests.test_ingest_cli import cli

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"official samples not found at {SAMPLES}")


@pytest.fixture
def db(tmp_path) -> Path:
    """A store that already holds a set, so that 'unchanged' means something."""
    path = tmp_path / "s.duckdb"
    feedback = probesets.get("builtin/feedback")
    Store(path).ingest(feedback, feedback.load())
    return path


def sample_lines(name: str) -> list[str]:
    return (SAMPLES / name).read_text(encoding="utf-8").splitlines()


def write_lines(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def fails_cleanly(db: Path, *args: str) -> str:
    """Run the command; assert it failed cleanly and changed nothing; return its message."""
    before, size = Store(db).stats(), db.stat().st_size
    done = cli(db, *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert Store(db).stats() == before and db.stat().st_size == size
    return done.stderr


def without(line: str, key: str) -> str:
    row = json.loads(line)
    del row["base"][key]
    return json.dumps(row)


def test_a_malformed_line(db, tmp_path):
    lines = sample_lines("answer.jsonl")
    lines[2] = lines[2][:60]  # cut mid-object, as a bad edit would
    path = write_lines(tmp_path / "in", "answer.jsonl", lines)
    message = fails_cleanly(db, "ingest", "sycophancy-eval/answer", "--from", str(path.parent))
    assert str(path) in message and "line 3" in message and "not valid JSON" in message


def test_a_row_missing_a_key(db, tmp_path):
    lines = sample_lines("answer.jsonl")
    lines[1] = without(lines[1], "incorrect_answer")
    path = write_lines(tmp_path / "in", "answer.jsonl", lines)
    message = fails_cleanly(db, "ingest", "sycophancy-eval/answer", "--from", str(path.parent))
    assert str(path) in message and "line 2" in message and "'base.incorrect_answer'" in message


def test_an_are_you_sure_row_missing_its_letter_choices(db, tmp_path):
    lines = sample_lines("are_you_sure.jsonl")
    lines[3] = without(lines[3], "answers")
    path = write_lines(tmp_path / "in", "are_you_sure.jsonl", lines)
    message = fails_cleanly(db, "ingest", "sycophancy-eval/are_you_sure", "--from", str(path.parent))
    assert str(path) in message and "line 4" in message and "'base.answers'" in message


@pytest.mark.parametrize(
    ("other", "set_id", "line", "key"),
    [
        ("feedback.jsonl", "sycophancy-eval/answer", 1, "metadata.prompt_template"),
        ("answer.jsonl", "sycophancy-eval/are_you_sure", 2, "metadata"),
        ("are_you_sure.jsonl", "sycophancy-eval/feedback", 1, "metadata.prompt_template_type"),
        ("answer.jsonl", "perez/nlp_survey", 1, "question"),
    ],
)
def test_the_file_of_another_set(db, tmp_path, other, set_id, line, key):
    """The official file of one set saved under another set's name: named, never half-read."""
    target = probesets.get(set_id).files[0].filename
    path = write_lines(tmp_path / "in", target, sample_lines(other))
    message = fails_cleanly(db, "ingest", set_id, "--from", str(path.parent))
    assert str(path) in message and f"line {line}" in message and f"'{key}'" in message
    assert f"looks like one of {other}" in message


def test_an_empty_file(db, tmp_path):
    path = write_lines(tmp_path / "in", "feedback.jsonl", ["", ""])
    message = fails_cleanly(db, "ingest", "sycophancy-eval/feedback", "--from", str(path.parent))
    assert str(path) in message and "no rows" in message


def test_a_missing_official_file(db, tmp_path):
    (tmp_path / "empty").mkdir()
    message = fails_cleanly(db, "ingest", "sycophancy-eval/feedback", "--from", str(tmp_path / "empty"))
    assert str(tmp_path / "empty" / "feedback.jsonl") in message


def test_an_unknown_set_and_a_from_folder_for_a_builtin_set(db, tmp_path):
    assert "builtin/facts-answer" in fails_cleanly(db, "ingest", "builtin/facts")
    assert "built in" in fails_cleanly(db, "ingest", "builtin/feedback", "--from", str(tmp_path))


def test_a_store_that_is_not_duckdb(tmp_path):
    path = tmp_path / "notes.duckdb"
    content = b"these are my notes, not a database\n" * 200
    path.write_bytes(content)
    for args in (["ingest", "builtin/feedback"], ["stats", "--json"], ["sets"]):
        done = cli(path, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert str(path) in done.stderr and "not a DuckDB store" in done.stderr
    assert path.read_bytes() == content


def test_a_bad_fact_table(tmp_path):
    table = tmp_path / "capitals.csv"
    table.write_text("question,answer,aliases,incorrect_answer\nWhat is the capital of Peru?,Lima,,Cusco\n"
                     "What is the capital of Chile?,Santiago,,\n", encoding="utf-8")  # fmt: skip
    with pytest.raises(ProbeSetError) as caught:
        read_facts("builtin/facts-answer", [], folder=tmp_path)
    assert str(caught.value) == f"{table}, line 3, key 'incorrect_answer': empty value"


# -- downloads: the store stays unchanged and no partial file passes for the real one ----------------


def load_and_save(store: Store, remote: Remote, cache: Path) -> None:
    ps = dataclasses.replace(probesets.get("sycophancy-eval/feedback"), files=(remote,))
    store.ingest(ps, ps.load(cache=cache))


def assert_nothing_cached(cache: Path) -> None:
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_a_truncated_download(db, tmp_path):
    body = (SAMPLES / "feedback.jsonl").read_bytes()
    store, before = Store(db), Store(db).stats()
    # The server announces the whole file, sends half, and closes the connection.
    with serve({"/feedback.jsonl": (body[: len(body) // 2], len(body))}) as (base, _):
        remote = Remote(base + "/feedback.jsonl", "feedback.jsonl")
        with pytest.raises(ProbeSetError) as caught:
            load_and_save(store, remote, tmp_path / "cache")
    message = str(caught.value)
    assert remote.url in message and "truncated" in message and "'feedback.jsonl'" in message
    assert f"of {len(body):,} bytes" in message
    assert store.stats() == before
    assert_nothing_cached(tmp_path / "cache")


def test_a_checksum_mismatch(db, tmp_path):
    body = (SAMPLES / "feedback.jsonl").read_bytes()
    store, before = Store(db), Store(db).stats()
    expected = hashlib.sha256(body + b"\n").hexdigest()  # as if the file changed upstream
    with serve({"/feedback.jsonl": body}) as (base, _):
        remote = Remote(base + "/feedback.jsonl", "feedback.jsonl", expected)
        with pytest.raises(ProbeSetError) as caught:
            load_and_save(store, remote, tmp_path / "cache")
    message = str(caught.value)
    assert "checksum mismatch" in message and expected in message
    assert hashlib.sha256(body).hexdigest() in message
    assert "feedback.jsonl" in message
    assert store.stats() == before
    assert_nothing_cached(tmp_path / "cache")


def test_a_corrupt_cached_file_is_refused(db, tmp_path):
    body = (SAMPLES / "feedback.jsonl").read_bytes()
    cached = tmp_path / "cache" / "sycophancy-eval" / "feedback.jsonl"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(body[:100])
    remote = Remote("http://127.0.0.1:9/feedback.jsonl", "feedback.jsonl", hashlib.sha256(body).hexdigest())
    store, before = Store(db), Store(db).stats()
    with pytest.raises(ProbeSetError, match="checksum mismatch") as caught:
        load_and_save(store, remote, tmp_path / "cache")
    assert str(cached) in str(caught.value)
    assert store.stats() == before


def test_a_missing_remote_file(db, tmp_path):
    store, before = Store(db), Store(db).stats()
    with serve({}) as (base, _):
        remote = Remote(base + "/feedback.jsonl", "feedback.jsonl")
        with pytest.raises(ProbeSetError, match="HTTP 404") as caught:
            load_and_save(store, remote, tmp_path / "cache")
    assert remote.url in str(caught.value)
    assert store.stats() == before
    assert_nothing_cached(tmp_path / "cache")
