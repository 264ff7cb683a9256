"""A demo store to carry (lib.view.demo, `python -m lib demo`) made by the real bundled model, and the
dashboard opening such a file read-only (SYCOSCOPE_READ_ONLY): every page, nothing written."""

from __future__ import annotations

import hashlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from lib import cli
from lib.paths import REPO
from lib.run import runner
from lib.run.providers import bundled
from lib.store import Store, StoreError, sql
from lib.store.database import READ_ONLY_ENV
from lib.view import demo, firstrun

# One set, one item: four requests a demo, so that two demos stay quick on two busy cores.
TINY = replace(firstrun.SEED, set_ids=("builtin/facts-answer",))
PAGES = sorted(p.stem for p in (REPO / "pages").glob("*.py"))


@pytest.fixture(scope="module")
def demos(tmp_path_factory) -> tuple[Path, Path]:
    """Two demo stores made by the same call, in two folders."""
    bundled.server()  # one real server for both
    made = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp(name) / "demo.duckdb"
        demo.make(out, 1, seed=0, base=TINY)
        made.append(out)
    return made[0], made[1]


def replies(path: Path) -> list[tuple]:
    return Store(path, read_only=True).query(
        "SELECT probe_id, turn, messages::VARCHAR, response FROM transcripts ORDER BY probe_id, turn"
    )


def test_the_same_demo_twice_gives_the_same_replies_with_its_run_record(demos):
    first, second = demos
    assert len(replies(first)) == 4  # one item under each of the four framings
    assert replies(first) == replies(second)
    runs = Store(first, read_only=True).query(
        "SELECT status, model, json_extract_string(plan, '$.kind'), json_extract(plan, '$.limit')::INT, "
        "n_planned, n_done FROM runs"
    )
    assert runs == [("done", "bundled:smollm2", "demo", 1, 4, 4)]
    graded = Store(first, read_only=True).scalar("SELECT count(DISTINCT transcript_id) FROM grades")
    assert graded == 4


def test_demo_refuses_a_file_that_is_there(tmp_path, capsys):
    there = tmp_path / "talk.duckdb"
    there.write_bytes(b"the speaker's notes")
    assert cli.main(["demo", "--out", str(there), "--items", "1"]) == 2
    assert f"{there} is there already; the demo writes a new store only" in capsys.readouterr().err
    assert there.read_bytes() == b"the speaker's notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.duckdb"]
    # an old store's write-ahead log alone: opened, the new store would replay it
    log = tmp_path / "old.duckdb.wal"
    log.write_bytes(b"an old store's last writes")
    assert cli.main(["demo", "--out", str(tmp_path / "old.duckdb"), "--items", "1"]) == 2
    assert f"{log} is there already" in capsys.readouterr().err
    assert log.read_bytes() == b"an old store's last writes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.duckdb.wal", "talk.duckdb"]
    fresh = tmp_path / "new.duckdb"
    assert cli.main(["demo", "--out", str(fresh), "--items", "0"]) == 2
    assert "--items 0" in capsys.readouterr().err and not fresh.exists()


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def demo_command(out: Path, url: str) -> tuple[list[str], dict[str, str]]:
    """`python -m lib demo` for one item of each seed set, as a speaker types it, its bundled model the
    server at `url` (SYCOSCOPE_BUNDLED_URL)."""
    argv = [sys.executable, "-m", "lib", "demo", "--out", str(out), "--items", "1"]
    return argv, {**os.environ, "SYCOSCOPE_BUNDLED_URL": url}


@contextmanager
def demo_under_way(out: Path) -> Iterator[subprocess.Popen]:
    """The demo command in a process of its own, once the shared bundled server has answered one of
    its requests (its run is under way); killed at the end if it still runs."""
    server = bundled.server()
    before = server.request_count()
    argv, env = demo_command(out, server.url)
    child = subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 300
        while server.request_count() == before:
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the demo sent no request in 300 s"
            time.sleep(0.05)
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_store_made_at_the_path_while_the_demo_runs_is_not_replaced(tmp_path, monkeypatch):
    out = tmp_path / "talk.duckdb"
    execute = runner.execute

    def and_meanwhile(*args, **kwargs):
        execute(*args, **kwargs)
        Store(out)  # a dashboard opened on the path while the demo ran
        with Store(out).writing() as con:
            con.execute("CREATE TABLE precious AS SELECT 42 AS answer")

    monkeypatch.setattr(runner, "execute", and_meanwhile)
    with pytest.raises(ValueError, match=f"{out} is there already"):
        demo.make(out, 1, base=TINY)
    assert Store(out).scalar("SELECT answer FROM precious") == 42
    assert not list(tmp_path.glob("talk.duckdb.partial*"))


def test_a_demo_killed_mid_run_leaves_no_store_and_the_next_one_starts_afresh(tmp_path, capsys):
    """A real `python -m lib demo` killed outright (SIGKILL: no clean-up) once its run has had a reply
    leaves no store at FILE, only its partial one; a second demo while it runs refuses and touches
    nothing of it; the demo after the kill removes the partial store, says so, and leaves FILE alone
    beside its lock files, its run done."""
    out = tmp_path / "talk.duckdb"
    with demo_under_way(out) as child:
        assert cli.main(["demo", "--out", str(out), "--items", "1"]) == 2
        assert "another demo is making it now" in capsys.readouterr().err
        assert child.poll() is None, child.communicate()  # killed mid-run, not after it
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    left = names(tmp_path)
    assert "talk.duckdb" not in left
    assert {"talk.duckdb.partial", "talk.duckdb.making"} <= set(left)

    said: list[str] = []
    store, run_id = demo.make(out, 1, base=TINY, say=said.append)
    assert store.path == out
    assert len(said) == 1 and f"removed {out}.partial" in said[0]
    assert names(tmp_path) == ["talk.duckdb", "talk.duckdb.gate", "talk.duckdb.lock"]
    assert len(replies(out)) == 4
    runs = Store(out, read_only=True).query("SELECT run_id, status, n_done FROM runs")
    assert runs == [(run_id, "done", 4)]


def test_a_demo_interrupted_by_ctrl_c_writes_nothing_and_removes_its_partial_store(tmp_path):
    """Ctrl-C (SIGINT) once the run has had a reply: the requests under way end, then the command says
    FILE was not written and its partial store removed, and exits 130; the folder is left empty."""
    out = tmp_path / "talk.duckdb"
    with demo_under_way(out) as child:
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=300)
    assert child.returncode == 130, err
    assert f"{out} was not written; its partial store {out}.partial was removed" in err
    assert names(tmp_path) == []


def test_a_demo_whose_run_fails_writes_nothing_and_says_why(tmp_path):
    """The bundled model's server answering 404 (a wrong URL): the run stops at its first request, the
    command says so and exits 1, and nothing is left in the folder: no store, no partial store, no
    lock file."""
    out = tmp_path / "talk.duckdb"
    argv, env = demo_command(out, f"{bundled.server().url}/no-such-path")
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "ended failed" in done.stderr and f"nothing was written at {out}" in done.stderr
    assert "404" in done.stderr or "not found" in done.stderr.lower()
    assert names(tmp_path) == []


def test_a_demo_leaves_a_file_at_its_partial_path_that_is_no_store_alone(tmp_path, capsys):
    out = tmp_path / "talk.duckdb"
    partial = tmp_path / "talk.duckdb.partial"
    partial.write_bytes(b"the speaker's notes, named oddly")
    assert cli.main(["demo", "--out", str(out), "--items", "1"]) == 2
    assert "is not a demo's partial store: move it away" in capsys.readouterr().err
    assert partial.read_bytes() == b"the speaker's notes, named oddly"
    assert names(tmp_path) == ["talk.duckdb.partial"]


def listing(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Each file of the folder: its size, its modification time and a digest of its bytes."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.iterdir())
    }


@pytest.fixture
def read_only_demo(demos, monkeypatch):
    """The first demo, its file 0444 and its folder 0555 (as on read-only media), opened read-only."""
    path = demos[0]
    path.chmod(0o444)
    path.parent.chmod(0o555)
    monkeypatch.setenv("SYCOSCOPE_DB", str(path))
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    yield path
    path.parent.chmod(0o755)
    path.chmod(0o644)


def test_every_page_opens_a_read_only_demo_and_writes_nothing(read_only_demo, monkeypatch):
    folder = read_only_demo.parent
    before = listing(folder)
    modes = []
    connect = duckdb.connect

    def watched(*args, **kwargs):
        if str(args[0] if args else kwargs.get("database")) == str(read_only_demo):
            modes.append(kwargs.get("read_only", False))
        return connect(*args, **kwargs)

    monkeypatch.setattr(duckdb, "connect", watched)
    for page in PAGES:
        at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120)
        if page != "overview":
            at.switch_page(f"pages/{page}.py")
        at.run()
        assert not at.exception, (page, at.exception)
        assert not at.error, (page, [e.value for e in at.error])
        sidebar = [str(c.value) for c in at.sidebar.caption]
        assert any("Read-only store" in c for c in sidebar), page
        if page == "run":
            assert any("the store is open read-only" in str(c.value) for c in at.caption)
            assert at.button(key="start").disabled
    assert listing(folder) == before  # no file written, made or changed beside it either
    assert modes and all(modes)  # DuckDB opened it read-only, every time
    if os.geteuid() != 0:  # root writes through permissions: then the listing above is the proof
        assert not os.access(folder, os.W_OK) and not stat.S_IMODE(read_only_demo.stat().st_mode) & 0o222


def test_a_read_only_store_refuses_writes_and_is_not_made(tmp_path, monkeypatch):
    path = tmp_path / "made.duckdb"
    Store(path)
    store = Store(path, read_only=True)
    with pytest.raises(StoreError, match="open read-only"), store.writing():
        pass
    monkeypatch.setenv(READ_ONLY_ENV, "1")
    assert Store(path).read_only
    assert Store(path).scalar(sql.COUNT["transcripts"]) == 0
    with pytest.raises(StoreError, match="no store there"):
        Store(tmp_path / "missing.duckdb")
    assert not (tmp_path / "missing.duckdb").exists()
    # the dashboard says so, and makes nothing
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "missing.duckdb"))
    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=120).run()
    assert not at.exception
    assert any("no store there to open read-only" in str(e.value) for e in at.error)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "made.duckdb",
        "made.duckdb.gate",
        "made.duckdb.lock",
    ]


def test_a_read_only_store_leaves_the_lock_files_beside_it_alone(tmp_path):
    """A run's lock file beside a store opened read-only is not removed, though its run is over (a
    store on a stick: its folder is the speaker's, not the dashboard's)."""
    from lib.run import runner

    path = tmp_path / "talk.duckdb"
    Store(path).scalar(sql.COUNT["runs"])  # made, with its schema
    stale = Path(f"{path}.run-0123456789ab.lock")
    stale.write_text("")
    assert runner.mark_interrupted(Store(path, read_only=True)) == []
    assert stale.exists()
    runner.mark_interrupted(Store(path))  # written by its owner: the free lock of no open run goes
    assert not stale.exists()
