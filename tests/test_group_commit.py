"""The run's writer holds replies for a store whose commits are slow (a DuckLake catalog:
`write_every`), here a real file store told to hold them: held replies are written before the run's
answers are graded, when they have waited long enough with no new reply to write them, and, when the
run fails outside its writes, with the run's end; none is lost or written twice."""

from __future__ import annotations

import threading

import pytest

from lib.measure import grading
from lib.run import runner
from lib.store import StoreError, sql
from tests.test_faults import FACTS, SlowServer, facts_store


def facts_spec(server: SlowServer, limit: int, concurrency: int = 2) -> runner.RunSpec:
    return runner.RunSpec(
        "openai:held", (FACTS,), ("neutral",), limit=limit, base_url=server.url, concurrency=concurrency
    )


def stored(store) -> list[tuple[str, int]]:
    return store.query("SELECT transcript_id, count(*) FROM transcripts GROUP BY ALL")


def test_held_replies_are_written_before_the_run_is_graded(tmp_path):
    store = facts_store(tmp_path / "s.duckdb")
    store.write_every = 60.0  # nothing is written before the run ends
    with SlowServer() as server:
        the_plan = runner.plan(store, facts_spec(server, 6))
        run_id = runner.create_run(store, the_plan)
        runner.execute(store, run_id, the_plan, grade=grading.grade_run)
    keys = {job.key for job in the_plan.jobs}
    assert {key: n for key, n in stored(store)} == dict.fromkeys(keys, 1)
    graded = store.query(
        "SELECT count(DISTINCT transcript_id) FROM grades WHERE list_contains(?, transcript_id)", [list(keys)]
    )
    assert graded == [(len(keys),)]
    assert store.query("SELECT status, n_done FROM runs WHERE run_id = ?", [run_id]) == [("done", len(keys))]


def test_a_held_reply_is_written_when_due_though_no_new_reply_comes(tmp_path):
    """One request at a time, each answered after 2 s: the first reply, held, is written while the
    second request is still out (the run's loop writes a reply that has waited `write_every`)."""
    store = facts_store(tmp_path / "s.duckdb")
    store.write_every = 0.3
    seen_while_second_out: list[int] = []

    def on_request(number: int) -> None:
        if number == 2:  # the first reply is held by now; look before this one is answered
            threading.Timer(1.5, lambda: seen_while_second_out.append(len(stored(store)))).start()

    with SlowServer(delay=2.0, on_request=on_request) as server:
        the_plan = runner.plan(store, facts_spec(server, 2, concurrency=1))
        run_id = runner.create_run(store, the_plan)
        runner.execute(store, run_id, the_plan)
    assert seen_while_second_out == [1]
    assert len(stored(store)) == 2


def test_a_failed_write_keeps_its_replies_held_and_the_run_end_writes_them(tmp_path, monkeypatch):
    """The first write of held replies fails (a store error): the run fails, and its end writes every
    reply it was paid for, each once."""
    store = facts_store(tmp_path / "s.duckdb")
    store.write_every = 60.0
    real = runner.Writer._write
    calls = {"n": 0}

    def failing_once(self, write) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # the first is the run's "running"; the second writes the held replies
            raise StoreError("the disk said no")
        real(self, write)

    monkeypatch.setattr(runner.Writer, "_write", failing_once)
    with SlowServer() as server:
        the_plan = runner.plan(store, facts_spec(server, 4))
        run_id = runner.create_run(store, the_plan)
        with pytest.raises(StoreError, match="the disk said no"):
            runner.execute(store, run_id, the_plan, grade=grading.grade_run)
        assert server.requests == len(the_plan.jobs)
    assert {key: n for key, n in stored(store)} == dict.fromkeys((job.key for job in the_plan.jobs), 1)
    assert store.query(sql.CANCEL_REQUESTED, [run_id]) == [(False,)]
    assert store.scalar("SELECT status FROM runs WHERE run_id = ?", [run_id]) == "failed"
