"""The background fill: after the first-run seed (a few items of each built-in set), the bundled model
goes on answering until every set of the seed has TARGET items answered under every framing (or all
the items it has), so that the Overview's intervals narrow from n = 6 to n = 100 while people look.

- Steps: the seed's run again with a larger limit, 25, 50, then 100 items per set (STEPS), one run
  each, its plan marked kind "fill" (RunSpec.kind). The same sample seed draws the items, so each step
  holds the items of the one before, and planning against the cache sends only what is new. Answers
  are graded as they arrive, as the seed's are.
- It gives way: recording any other run asks the open fill run to cancel (lib.run.runner.create_run),
  and a step starts only when no other run is open. A fill that gave way does not start again when
  that run ends: it resumes when the dashboard is next opened (a new session on the Overview) and no
  run is going, or when the operator presses Resume.
- Paused: a setting in the store (PAUSED), so every session and process sees it; pausing also cancels
  the open step. Resume clears it and starts the fill.
- Done: every (set, framing) has min(TARGET, the set's items) items answered by the seed's model at the
  seed's parameters (sql.FILL_COVERAGE), whichever run answered them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

from lib.measure import grading
from lib.run import runner
from lib.store import Store, StoreError, sql
from lib.view import firstrun

TARGET = 100  # items per framing of each set
STEPS = (25, 50, 100)  # items per set of each step after the seed's
PAUSED = "fill_paused"  # the setting (meta table) that holds the pause
SEED_POLL = 1.0  # seconds between looks at the seed the fill waits for


def step_limits(least: int, target: int = TARGET, steps: tuple[int, ...] = STEPS) -> list[int]:
    """The limits of the steps still to run when the least-filled framing of a set has `least`
    items answered: each step below the target, then the target, above `least`."""
    return [limit for limit in (*(s for s in steps if s < target), target) if limit > least]


def least_answered(store: Store, base: runner.RunSpec = firstrun.SEED, target: int = TARGET) -> int | None:
    """The fewest items answered under one framing of a set of `base` not yet filled (a set not in the
    store counts 0); None when every (set, framing) has min(target, its items)."""
    rows = store.query(
        sql.FILL_COVERAGE, [base.model, base.base_url, json.dumps(base.params), list(base.set_ids)]
    )
    if set(base.set_ids) - {set_id for set_id, *_ in rows}:
        return 0
    short = [answered for _, _, items, answered in rows if answered < min(items, target)]
    return min(short) if short else None


def planned(
    store: Store, base: runner.RunSpec = firstrun.SEED, target: int = TARGET, steps: tuple[int, ...] = STEPS
) -> list[int]:
    """The limits of the steps the fill would run on this store now; [] when it is filled."""
    least = least_answered(store, base, target)
    return [] if least is None else step_limits(least, target, steps)


def seeded(store: Store) -> bool:
    """Whether the store had the first-run seed: only such a store is filled."""
    return bool(store.query(sql.RUNS_OF_KIND, [firstrun.SEED.kind]))


def paused(store: Store) -> bool:
    return store.scalar(sql.GET_SETTING, [PAUSED]) is not None


def open_runs(store: Store) -> dict[str, str]:
    """The runs going on, run id -> kind (runs whose process died marked interrupted first)."""
    with suppress(StoreError):  # a busy store: marked another time, and counted as going meanwhile
        runner.mark_interrupted(store.with_timeout(runner.HOUSEKEEPING_TRY))
    return dict(store.query(sql.OPEN_RUN_KINDS))


def filling(store: Store) -> str | None:
    """The fill's run going on now, if any."""
    return next(
        (run_id for run_id, kind in store.query(sql.OPEN_RUN_KINDS) if kind == runner.GIVES_WAY), None
    )


def pause(store: Store) -> None:
    """Pause the fill, in the store: the step going on is cancelled and no other starts until Resume."""
    with store.writing() as con:
        con.execute(sql.DELETE_SETTING, [PAUSED])
        con.execute(sql.INSERT_SETTING, [PAUSED, time.strftime("%Y-%m-%d %H:%M:%S")])
        con.execute(sql.CANCEL_KIND, [runner.GIVES_WAY])


def resume(store: Store) -> None:
    """Clear the pause; `start` then starts the fill."""
    with store.writing() as con:
        con.execute(sql.DELETE_SETTING, [PAUSED])


@dataclass(frozen=True)
class Status:
    """What the Overview's fill line says: the least-filled framing, and whether the fill goes on."""

    least: int
    target: int
    going: bool
    paused: bool

    def text(self) -> str:
        where = f"{self.least} of {self.target} items per framing"
        if self.going:
            return f"Filling in: {where}…"
        if self.paused:
            return f"Filling in paused at {where}."
        return (
            f"Filling in stopped at {where}: it gave way to another run, and goes on when the dashboard "
            "is next opened with no run going, or on Resume."
        )


def status(store: Store, least: int | None, target: int = TARGET) -> Status | None:
    """The fill's state, read from the store, `least` being least_answered's (read once for all
    sessions); None on a store without the seed, or filled."""
    if least is None or not seeded(store):
        return None
    return Status(least, target, filling(store) is not None, paused(store))


# store file -> this process's fill thread
_threads: dict[Path, threading.Thread] = {}
_threads_guard = threading.Lock()


def start(
    store: Store,
    base: runner.RunSpec = firstrun.SEED,
    target: int = TARGET,
    steps: tuple[int, ...] = STEPS,
    grade: runner.Grade | None = grading.grade_run,
) -> bool:
    """Start the fill in a thread of this process, unless the store is read-only, has no seed, is
    filled, or the fill is paused or going; a seed of this process going on is waited for, any other
    run keeps it from starting. Whether it started."""
    if store.read_only or not seeded(store) or paused(store):
        return False
    if any(kind != firstrun.SEED.kind for kind in open_runs(store).values()):
        return False
    if least_answered(store, base, target) is None:
        return False
    with _threads_guard:
        going = _threads.get(store.key)
        if going is not None and going.is_alive():
            return False
        thread = threading.Thread(
            target=_fill, args=(store, base, target, steps, grade), name="sycoscope-fill", daemon=True
        )
        _threads[store.key] = thread
        thread.start()
    return True


def wait(store: Store, timeout: float | None = None) -> None:
    """Wait for this process's fill thread of the store to end (tests)."""
    thread = _threads.get(store.key)
    if thread is not None:
        thread.join(timeout)


def _fill(
    store: Store, base: runner.RunSpec, target: int, steps: tuple[int, ...], grade: runner.Grade | None
) -> None:
    """The fill's thread: after the seed, one run per step, each only when nothing else runs and the
    fill is not paused; it ends at the target, or when a step does not end done (cancelled: it gave
    way or was paused; failed). A background thread has no caller to raise to: whatever stops it
    ends it, and the store keeps the step's status and message."""
    try:
        if not _after_seed(store):
            return
        missing = set(base.set_ids) - dict(store.query(sql.SET_TASKS, [list(base.set_ids)])).keys()
        firstrun.ingest_builtins(store, tuple(sorted(missing)))  # sets added to the seed since
        for limit in planned(store, base, target, steps):
            if paused(store) or open_runs(store):
                return
            spec = replace(base, limit=limit, kind=runner.GIVES_WAY)
            the_plan = runner.plan(store, spec)
            if not the_plan.jobs:
                continue
            run_id = runner.create_run(store, the_plan)
            if paused(store) or set(open_runs(store)) - {run_id}:
                runner.cancel(store, run_id)  # another run began meanwhile: this step ends at once
            runner.execute(store, run_id, the_plan, grade=grade)
            if store.scalar(sql.RUN_STATUS, [run_id]) != "done":
                return
    except Exception:
        _log.exception("the background fill of %s stopped", store.name)


def _after_seed(store: Store) -> bool:
    """Wait while a seed runs; whether to go on: yes when none ran, else when it ended done (a
    cancelled or failed seed is not followed: the fill starts when the dashboard is next opened)."""
    waited = False
    while firstrun.SEED.kind in open_runs(store).values():
        waited = True
        time.sleep(SEED_POLL)
    return not waited or store.query(sql.RUNS_OF_KIND, [firstrun.SEED.kind])[0][1] == "done"


_log = logging.getLogger(__name__)
