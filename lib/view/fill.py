"""The background fill: after the first-run seed (a few items of each built-in set), the bundled model
goes on answering until every set of the seed has TARGET items answered under every framing (or all
the items it has), so that the Overview's intervals narrow from n = 6 to n = 100 while people look.

- Steps: the seed's run again with a larger limit, 25, 50, then 100 items per set (STEPS), one run
  each, its plan marked kind "fill" (RunSpec.kind); first on the sets of the Overview's cards, then on
  the pressure ladder (LATER, `groups`). The same sample seed draws the items, so each step holds the
  items of the one before (runner.allocate), and planning against the cache sends only what is new.
  Answers are graded as they arrive, as the seed's are.
- It gives way: recording any other run asks the open fill run to cancel (lib.run.runner.create_run),
  and a step starts only when no other run is open. The Why page's tests send to the bundled model
  without recording a run: they hold the fill off while they go on (`gives_way`). A fill that gave
  way does not start again when that run ends: it resumes when the dashboard is next opened (a new
  session on the Overview) and no run is going, or when the operator presses Resume.
- Stopped: a step that failed, or ended with probes failed after their retries, ends the fill, and a
  new session does not start it again (it would send the same failing requests): Resume does.
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
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from lib.measure import grading
from lib.run import runner
from lib.store import Store, StoreError, sql
from lib.view import firstrun

TARGET = 100  # items per framing of each set
STEPS = (25, 50, 100)  # items per set of each step after the seed's
# Filled after the others: the Overview's cards do not read it, and it is 658 of the fill's 1,536 probes;
# so the cards' intervals narrow first: n = 50 in 9 minutes, 100 in 17 on two cores (README, bench_fill).
LATER = ("builtin/pressure-ladder",)
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


def groups(base: runner.RunSpec = firstrun.SEED) -> list[tuple[str, tuple[str, ...]]]:
    """The sets of `base` in the order the fill takes them, named: the Overview's first, LATER's after."""
    first = tuple(s for s in base.set_ids if s not in LATER)
    later = tuple(s for s in base.set_ids if s in LATER)
    return [
        (name, sets)
        for name, sets in (("the Overview's sets", first), ("the pressure ladder", later))
        if sets
    ]


def planned(
    store: Store, base: runner.RunSpec = firstrun.SEED, target: int = TARGET, steps: tuple[int, ...] = STEPS
) -> list[tuple[tuple[str, ...], int]]:
    """The steps the fill would run on this store now, in order, each its sets and its limit; [] when
    it is filled."""
    return [
        (sets, limit)
        for _, sets in groups(base)
        if (least := least_answered(store, replace(base, set_ids=sets), target)) is not None
        for limit in step_limits(least, target, steps)
    ]


def progress(
    store: Store, base: runner.RunSpec = firstrun.SEED, target: int = TARGET
) -> tuple[str, int] | None:
    """Where the fill is: the first of its groups not yet filled, by name, with the fewest items
    answered under one framing of its sets; None when every set is filled."""
    for name, sets in groups(base):
        least = least_answered(store, replace(base, set_ids=sets), target)
        if least is not None:
            return name, least
    return None


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


def moving(store: Store) -> bool:
    """Whether a step goes on or the seed it follows does: one query, for the line's refresh."""
    kinds = {kind for _, kind in store.query(sql.OPEN_RUN_KINDS)}
    return bool(kinds & {runner.GIVES_WAY, firstrun.SEED.kind})


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


def _last_step(store: Store) -> tuple[str | None, int, str | None]:
    """The fill's last step: its status, its probes failed and its message (None, 0, None: none)."""
    rows = store.query(sql.LAST_RUN_OF_KIND, [runner.GIVES_WAY])
    return rows[0] if rows else (None, 0, None)


def stopped(store: Store) -> str | None:
    """Why the fill's last step ended it, when it failed or left probes failed after their retries
    (the run's message); None otherwise."""
    status, failed, message = _last_step(store)
    if status == "failed" or (status == "done" and failed):
        return message or status
    return None


State = Literal["going", "waiting", "paused", "stopped", "gave way", "interrupted"]


@dataclass(frozen=True)
class Status:
    """What the Overview's fill line says: the least-filled framing, and what the fill is doing."""

    sets: str  # the group of sets being filled (groups)
    least: int
    target: int
    state: State
    why: str = ""  # a stopped fill's last step's message (untrusted: it may quote a provider)

    def text(self, quote: Callable[[str], str] = str) -> str:
        """The line; `quote` makes the step's message safe where it is shown (pages.parts.show.md)."""
        where = f"{self.least} of {self.target} items per framing of {self.sets}"
        return {
            "going": f"Filling in: {where}…",
            "waiting": f"Filling in follows the first-run examples, at {where}.",
            "paused": f"Filling in paused at {where}.",
            "stopped": (
                f"Filling in stopped at {where}. Its last step: {quote(self.why)}. Resume tries again."
            ),
            "gave way": (
                f"Filling in stopped at {where}: it gave way to another run, and goes on when the "
                "dashboard is next opened with no run going, or on Resume."
            ),
            "interrupted": (
                f"Filling in stopped at {where} when the dashboard filling it stopped; it goes on when "
                "the dashboard is next opened with no run going, or on Resume."
            ),
        }[self.state]


def status(store: Store, at: tuple[str, int] | None, target: int = TARGET) -> Status | None:
    """The fill's state, read from the store, `at` being `progress`'s (read once for all sessions);
    None on a store without the seed, filled, or open read-only (nothing fills it)."""
    if at is None or store.read_only or not seeded(store):
        return None
    kinds = set(open_runs(store).values())  # a step whose process died: interrupted, not going
    why = stopped(store)
    state: State = (
        "going"
        if runner.GIVES_WAY in kinds
        else "paused"
        if paused(store)
        else "waiting"
        if firstrun.SEED.kind in kinds
        else "stopped"
        if why
        else "interrupted"
        if _last_step(store)[0] == "interrupted"
        else "gave way"
    )
    return Status(*at, target, state, why or "")


# store file -> this process's fill thread; and how many of its tasks the fill gives way to (gives_way)
_threads: dict[Path, threading.Thread] = {}
_held: Counter[Path] = Counter()
_threads_guard = threading.Lock()


@contextmanager
def gives_way(store: Store) -> Iterator[None]:
    """Hold the fill off while a task that sends to the model without recording a run goes on (the
    Why page's tests): its step going on is cancelled, and no step starts in this process meanwhile
    (the dashboard's: another process's fill only sees the cancel)."""
    with _threads_guard:
        _held[store.key] += 1
    try:
        if not store.read_only:
            with suppress(StoreError), store.writing() as con:  # busy: the task goes on beside the step
                con.execute(sql.CANCEL_KIND, [runner.GIVES_WAY])
        yield
    finally:
        with _threads_guard:
            _held[store.key] -= 1


def _given_way(store: Store) -> bool:
    with _threads_guard:
        return _held[store.key] > 0


def start(
    store: Store,
    base: runner.RunSpec = firstrun.SEED,
    target: int = TARGET,
    steps: tuple[int, ...] = STEPS,
    grade: runner.Grade | None = grading.grade_run,
    retry: bool = False,
) -> str | None:
    """Start the fill in a thread of this process; None when it started, else why not, in a sentence
    for the operator. A seed going on is waited for; any other run keeps it from starting; a fill
    whose last step failed starts again only on `retry` (Resume)."""
    if store.read_only:
        return "The store is open read-only: nothing fills it."
    if not seeded(store):
        return "This store did not have the first-run examples: there is nothing to fill in."
    if paused(store):
        return "The fill is paused."
    if _given_way(store) or any(kind != firstrun.SEED.kind for kind in open_runs(store).values()):
        return "The fill waits: another run is going on."
    if progress(store, base, target) is None:
        return "Every set is filled in."
    if not retry and stopped(store):
        return "The fill's last step failed: Resume tries again."
    with _threads_guard:
        going = _threads.get(store.key)
        if going is not None and going.is_alive():
            return "The fill is going on."
        thread = threading.Thread(
            target=_fill, args=(store, base, target, steps, grade), name="sycoscope-fill", daemon=True
        )
        _threads[store.key] = thread
        thread.start()
    return None


def wait(store: Store, timeout: float | None = None) -> bool:
    """Wait for this process's fill thread of the store to end; whether none goes on (tests)."""
    thread = _threads.get(store.key)
    if thread is not None:
        thread.join(timeout)
    return thread is None or not thread.is_alive()


def _fill(
    store: Store, base: runner.RunSpec, target: int, steps: tuple[int, ...], grade: runner.Grade | None
) -> None:
    """The fill's thread: after the seed, one run per step, each only when nothing else runs and the
    fill is not paused; it ends at the target, or when a step does not end done (cancelled: it gave
    way or was paused; failed) or leaves probes failed (`stopped`). A background thread has no caller
    to raise to: whatever stops it ends it, and the store keeps the step's status and message."""
    try:
        if not _after_seed(store):
            return
        missing = set(base.set_ids) - dict(store.query(sql.SET_TASKS, [list(base.set_ids)])).keys()
        firstrun.ingest_builtins(store, tuple(sorted(missing)))  # sets added to the seed since
        for sets, limit in planned(store, base, target, steps):
            if paused(store) or _given_way(store) or open_runs(store):
                return
            spec = replace(base, set_ids=sets, limit=limit, kind=runner.GIVES_WAY)
            the_plan = runner.plan(store, spec)
            if not the_plan.jobs:
                continue
            run_id = runner.create_run(store, the_plan)
            if paused(store) or _given_way(store) or set(open_runs(store)) - {run_id}:
                runner.cancel(store, run_id)  # another run began meanwhile: this step ends at once
            runner.execute(store, run_id, the_plan, grade=grade)
            if store.scalar(sql.RUN_STATUS, [run_id]) != "done" or stopped(store):
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
