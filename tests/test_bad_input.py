"""Bad input: each case gives one clear message naming the file, the line and the key, exit status 2
and no traceback at the command line, and leaves the store exactly as it was."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
from pathlib import Path

import pytest

from lib.measure import agreement
from lib.paths import GOLD, PRICES, REFERENCE
from lib.probes import probesets
from lib.probes.probesets import ProbeSetError, Remote
from lib.probes.probesets.builtin import FEEDBACK_TEXTS, read_facts, read_feedback_texts
from lib.run import imports, prices
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


def test_a_store_written_by_a_newer_duckdb(tmp_path):
    """A store file of DuckDB 2 (before the pin to 1.5.5, pip chose it): one message naming the file and
    the README's way to convert it, and the file untouched. tests/data/duckdb-2.0.1.duckdb.gz was made
    by DuckDB 2.0.1: `duckdb.connect(path).execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")`."""
    path = tmp_path / "sycoscope.duckdb"
    content = gzip.decompress((Path(__file__).parent / "data" / "duckdb-2.0.1.duckdb.gz").read_bytes())
    path.write_bytes(content)
    for args in (["stats", "--json"], ["sets"]):
        done = cli(path, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert str(path) in done.stderr and "A store written by DuckDB 2" in done.stderr
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


# -- files as other editors save them: a byte-order mark, CRLF line ends and blank lines -----------
#
# Each reader of a file from a person or a download reads such a file as it reads the clean one, and
# names a bad line by its line in the file.


def messy(text: str) -> bytes:
    """`text` as a Windows editor might save it after a person's edits: a UTF-8 byte-order mark, CRLF
    line ends, and a blank line (spaces) after every line, so line k of `text` is line 2k - 1 here."""
    lines = [line for line in text.split("\n") if line]
    return "\ufeff".encode() + "".join(f"{line}\r\n  \r\n" for line in lines).encode()


def in_file(line: int) -> int:
    """Where line `line` of a clean file is in its messy copy."""
    return 2 * line - 1


def relined(rows: probesets.Rows) -> probesets.Rows:
    """The rows of a clean file with the line numbers their items keep moved to the messy copy's."""
    moved = []
    for item, probes in rows:
        source = dict(item.source)
        if "lines" in source:
            source["lines"] = [in_file(n) for n in source["lines"]]
        if "line" in source:
            source["line"] = in_file(source["line"])
        moved.append((dataclasses.replace(item, source=source), probes))
    return moved


@pytest.mark.parametrize(
    "set_id", ["sycophancy-eval/answer", "sycophancy-eval/are_you_sure", "sycophancy-eval/feedback"]
)
def test_an_official_file_with_a_bom_crlf_and_blank_lines_reads_like_the_clean_one(tmp_path, set_id):
    probe_set = probesets.get(set_id)
    name = probe_set.files[0].filename
    (tmp_path / name).write_bytes(messy((SAMPLES / name).read_text(encoding="utf-8")))
    clean = probe_set.load(from_dir=SAMPLES)
    assert clean and probe_set.load(from_dir=tmp_path) == relined(clean)


def test_a_bad_line_of_a_messy_file_is_named_by_its_line_in_the_file(db, tmp_path):
    lines = sample_lines("answer.jsonl")
    lines[2] = lines[2][:60]
    folder = tmp_path / "in"
    folder.mkdir()
    path = folder / "answer.jsonl"
    path.write_bytes(messy("\n".join(lines)))
    message = fails_cleanly(db, "ingest", "sycophancy-eval/answer", "--from", str(folder))
    assert f"{path}, line {in_file(3)}: not valid JSON" in message


def test_a_fact_table_with_a_bom_crlf_and_blank_lines_reads_like_the_clean_one(tmp_path):
    text = (REFERENCE / "facts" / "capitals.csv").read_text(encoding="utf-8")
    clean, untidy = tmp_path / "clean" / "facts", tmp_path / "messy" / "facts"  # items name their folder
    for folder, body in ((clean, text.encode()), (untidy, messy(text))):
        folder.mkdir(parents=True)
        (folder / "capitals.csv").write_bytes(body)
    rows = read_facts("builtin/facts-answer", [], folder=clean)
    assert rows and read_facts("builtin/facts-answer", [], folder=untidy) == relined(rows)
    # a bad row is named by its line in the file
    lines = text.split("\n")
    lines[3] = "What is the capital of Peru?,Lima,,"
    (untidy / "capitals.csv").write_bytes(messy("\n".join(lines)))
    with pytest.raises(ProbeSetError) as caught:
        read_facts("builtin/facts-answer", [], folder=untidy)
    assert f"line {in_file(4)}, key 'incorrect_answer'" in str(caught.value)


def test_feedback_texts_with_a_bom_crlf_and_blank_lines_read_like_the_clean_ones(tmp_path):
    path = tmp_path / "feedback_texts.jsonl"
    path.write_bytes(messy(FEEDBACK_TEXTS.read_text(encoding="utf-8")))
    clean = read_feedback_texts("builtin/feedback", [])
    assert clean and read_feedback_texts("builtin/feedback", [], path=path) == relined(clean)


def test_a_price_table_with_a_bom_crlf_and_blank_lines_reads_like_the_clean_one(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_bytes(messy(PRICES.read_text(encoding="utf-8")))
    assert prices.load(path) == prices.load(PRICES) != {}
    path.write_bytes(messy(",".join(prices.COLUMNS) + "\nopenai:x,1,2,,\nopenai:y,1,,,\n"))
    with pytest.raises(prices.PriceFileError, match=f"line {in_file(3)}: output price '' is not a number"):
        prices.load(path)


def test_an_import_file_with_a_bom_crlf_and_blank_lines_reads_like_the_clean_one(tmp_path):
    replies = [
        {"item_id": "builtin/facts-answer#capitals-1", "framing": "neutral", "model": "m:x", "response": r}
        # U+2028 and a form feed may stand in a JSON string as they are: they end no line
        for r in ("Canberra.", "Sydney,\u2028I think.", "Perth\x0c?")
    ]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in replies)
    clean, messy_path = tmp_path / "clean.jsonl", tmp_path / "messy.jsonl"
    clean.write_text(text, encoding="utf-8")
    messy_path.write_bytes(messy(text))
    lines, problems = imports.read(clean)
    assert problems == [] and [line.response for line in lines] == [r["response"] for r in replies]
    moved = [dataclasses.replace(line, number=in_file(line.number)) for line in lines]
    assert imports.read(messy_path) == (moved, [])
    messy_path.write_bytes(messy(text + '\n{"item_id": 3}'))
    assert imports.read(messy_path)[1][0].startswith(f"line {in_file(4)}: ")


def test_a_gold_file_with_a_bom_crlf_and_blank_lines_reads_like_the_clean_one(tmp_path):
    path = tmp_path / "written.jsonl"
    path.write_bytes(messy((GOLD / "written.jsonl").read_text(encoding="utf-8")))
    clean = agreement.read_gold_file(GOLD / "written.jsonl")

    def moved(reply: agreement.GoldReply) -> agreement.GoldReply:
        name, _, line = reply.where.partition(":")
        return dataclasses.replace(reply, where=f"{name}:{in_file(int(line))}")

    assert clean and agreement.read_gold_file(path) == [moved(r) for r in clean]
