"""A run sent through a vendor's batch API (RunSpec.batch): half the price, replies within 24 hours.

The run's requests go in batches within the vendor's limits (lib.run.batch_vendors); each batch, and
each request in it under its custom_id (the cache key of the transcript it makes), is written to the
store the moment the vendor accepts it. At most MAX_BATCHES_OUT batches of a run are out at once: the
rest are sent as earlier ones are collected. The run then polls its batches (each at most once every
POLL_SECONDS by this run; another run, or another process, polls on its own clock) and collects each
that ended in one transaction: every answer a transcript keyed and built as a direct one
(runner.transcript), every request that failed for good a row of the errors table, the batch marked
collected. The run's progress counts a batch only once that transaction has collected it: a batch
another process collected first counts there, not here. A run stays "running" until everything is
collected.

Whose batches: a run polls, collects and takes over (ADOPT_BATCH) only the open batches that hold a
request of its plan (sql.OPEN_BATCHES, by the plan's cache keys). Such a batch may hold requests of
another plan too (a run killed with its batches out, then a run of an overlapping plan): their
answers are stored as transcripts all the same, as they are paid for, but count in no progress of
this run, and their failures are left to a run that plans them (no transcript, so it sends them
again). A batch that holds nothing of the plan is left alone, for a run that plans it. Nothing out in
any batch of the model at these parameters is sent again (sql.IN_FLIGHT), whichever run sent it.

Resuming: what is in flight is read from the store, not from memory. A run killed while its batches
are out, or a run started again on the same plan (`python -m lib run --batch ...` again, or Start on
the Run page), takes those batches over, polls and collects them, and sends only what is neither
stored nor in flight.

What is paid twice, and when: a process killed after the vendor accepted a batch but before the
store held it (one store write) sends that batch again when run again: the replies are keyed alike,
so nothing is stored twice, but it is paid twice. A create whose answer is lost (a timeout, a lost
connection, a 5xx) is not simply sent again (batch_vendors.OpenAIBatches.submit): OpenAI's is looked
for by its metadata among the LIST_RECENT newest batches first, so it is made twice only when it is
not among them; Anthropic's stops the run, saying the batch may exist (CreateUnconfirmed).

What a batch cannot answer is tried again in a later batch: requests that expired (the 24 h window),
were cancelled, or failed in a way a retry may pass (rate limit, server error, a result line that
cannot be read), up to MAX_ATTEMPTS sendings in a run; then, and at once for a request no retry fixes
(a bad request), its probe gets a row of the errors table, never a transcript. A batch OpenAI fails as
a whole because the organisation's queue is full (token_limit_exceeded) is rate limited: its requests
go again, and no sooner than another of the run's batches ends (the run's cap drops to the batches
still out), not counted as a sending while others were out. Any other batch refused as a whole fails
each of its requests as a bad request. A create refused (a 4xx) stops the run with the vendor's
message, as a direct run stops. A batch whose results cannot be read COLLECT_TRIES times (archived,
gone, refused) is marked failed, each of its requests a retryable error row: a later run sends them
again, and no run waits on it.

"Are you sure?" conversations: each collected turn that has a turn after it (runner.next_turn) is
sent in the next batch, so turn 2 goes once turn 1 is stored and turn 3 after turn 2 (and with
RunSpec.challenges K, each further challenge after the answer before it). Each round
plans the run again (runner.plan), which walks the conversations through the stored replies: the same
rule that resumes a direct run.
"""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lib.probes.items import messages_json
from lib.run import batch_vendors, runner
from lib.run.batch_vendors import Batches, Request, Result
from lib.run.providers import Provider, ProviderError
from lib.run.runner import Grade, Job, Plan, Progress, Writer
from lib.store import Store, StoreBusy, sql

# The vendor is asked about a batch at most once a POLL_SECONDS (OpenAI and Anthropic answer within
# 24 h, most batches within the hour); the loop looks at the store and the cancel flag every TICK.
POLL_SECONDS = 60.0
TICK_SECONDS = 1.0
MAX_ATTEMPTS = 3  # sendings of one request in a run before its probe gets an error row
# Batches of a run (one model) out at once. OpenAI limits the tokens an organisation has queued per
# model and fails a whole batch past it (token_limit_exceeded); a few batches of up to 50,000
# requests keep the queue full without going far past it. The rest go as earlier ones are collected.
MAX_BATCHES_OUT = 4
COLLECT_TRIES = 3  # reads of an ended batch's results that fail before it is given up


@dataclass
class _Sending:
    """What a batch run holds in memory between rounds; the store holds what must outlive it."""

    store: Store
    run_id: str
    spec: runner.RunSpec
    batches: Batches
    writer: Writer
    cap: int  # batches out at once (MAX_BATCHES_OUT); lowered when the vendor's queue is full
    planned: set[str] = field(default_factory=set)  # the plan's cache keys: what the run counts
    attempts: Counter[str] = field(default_factory=Counter)  # custom_id -> sendings in this run
    given_up: set[str] = field(default_factory=set)  # failed for good in this run: in the errors table
    # batch id -> when this run last asked the vendor about it (time.monotonic); open batches only
    last_poll: dict[str, float] = field(default_factory=dict)
    unread: Counter[str] = field(default_factory=Counter)  # batch id -> reads of its results that failed


def send(
    store: Store,
    run_id: str,
    the_plan: Plan,
    provider: Provider,
    writer: Writer,
    on_progress: Callable[[Progress], None] | None,
    grade: Grade | None,
) -> tuple[str, str | None]:
    """Send the plan's jobs in batches, poll and collect them until every one is stored or given
    up. Returns the run's (status, message): done or cancelled. Raises RunStopped when the vendor
    refuses a batch (a bad key, a 4xx on create) as a direct run stops, or a create's answer is lost
    where it cannot be looked for (CreateUnconfirmed); StoreBusy when the store stays busy."""
    spec = the_plan.spec
    run = _Sending(store, run_id, spec, batch_vendors.for_provider(provider), writer, MAX_BATCHES_OUT)
    params = json.dumps(spec.params)
    jobs = the_plan.jobs
    ours: list[str] = []
    replan = True  # the first round, and after each batch collected: send what is missing
    while True:
        if replan:
            replan = False
            run.planned = {j.key for j in jobs}
            in_flight = {row[0] for row in store.query(sql.IN_FLIGHT, [spec.model, params])}
            unsent = [j for j in jobs if j.key not in in_flight and j.key not in run.given_up]
            ours = [
                row[0] for row in store.query(sql.OPEN_BATCHES, [spec.model, params, sorted(run.planned)])
            ]
            if unsent and len(ours) < run.cap:
                _submit(run, unsent, run.cap - len(ours))
                ours = [
                    row[0] for row in store.query(sql.OPEN_BATCHES, [spec.model, params, sorted(run.planned)])
                ]
            if not ours:
                return "done", None
            run.last_poll = {b: t for b, t in run.last_poll.items() if b in ours}
        for batch_id in ours:
            if time.monotonic() - run.last_poll.get(batch_id, -POLL_SECONDS) < POLL_SECONDS:
                continue
            run.last_poll[batch_id] = time.monotonic()
            state = runner.retrying(lambda b=batch_id: run.batches.state(b), spec.model)
            if not state.ended:
                writer.patience.attempt(lambda q, b=batch_id, st=state: _polled(q, run_id, b, st.status))
                continue
            # the vendor's queue was full: nothing of it ran; wait for a batch still out to end
            limited = state.error_kind == "rate_limit" and state.error is not None
            if _collect(run, batch_id, state, refund=limited and len(ours) > 1):
                replan = True
                if limited:
                    run.cap = max(1, len(ours) - 1)
        if replan:
            writer.finish("running", None)  # the progress, and whether the user asked to cancel
        if on_progress is not None:
            on_progress(writer.progress)
        if writer.cancel_requested or _cancel_asked(store, run_id):
            return "cancelled", "cancelled by the user; its batches run on: run it again to collect them"
        if replan:
            if grade is not None:
                writer.patience.attempt(lambda quick: grade(quick, run_id))
            jobs = runner.plan(store, spec).jobs  # retries and next turns: whatever is still missing
        else:
            time.sleep(TICK_SECONDS)


def _cancel_asked(store: Store, run_id: str) -> bool:
    """Whether the user asked to cancel, read without a write: a run waits hours between answers."""
    try:
        return bool(store.with_timeout(runner.BUSY_TRY).scalar(sql.CANCEL_REQUESTED, [run_id]))
    except StoreBusy:
        return False  # asked again at the next tick


def _polled(store: Store, run_id: str, batch_id: str, vendor_status: str) -> None:
    with store.writing() as con:
        con.execute(sql.ADOPT_BATCH, [run_id, batch_id])
        con.execute(sql.POLLED_BATCH, [vendor_status, batch_id])


def _submit(run: _Sending, jobs: list[Job], room: int) -> None:
    """Send the jobs' requests in at most `room` batches within the vendor's limits, each written to
    the store as soon as the vendor accepted it; the rest wait for a later round."""
    spec = run.spec
    by_key = {job.key: job for job in jobs}
    lines = (run.batches.line(Request(j.key, j.messages), spec.temperature, spec.max_tokens) for j in jobs)
    for chunk in itertools.islice(batch_vendors.chunks(lines, run.batches.limits), room):
        tries = itertools.count()  # a try after the first looks for a batch the first made
        sending = uuid.uuid4().hex
        batch_id = runner.retrying(
            lambda c=chunk, s=sending, t=tries: run.batches.submit(c, s, next(t) > 0), spec.model
        )
        requests = pd.DataFrame(
            [_request_row(batch_id, by_key[line["custom_id"]]) for line in chunk],
            columns=[
                "batch_id",
                "custom_id",
                "probe_id",
                "sample",
                "turn",
                "parent_id",
                "messages",
                "challenge",
                "letters",
            ],
        )

        def write(
            quick: Store, b: str = batch_id, n: int = len(chunk), rows: pd.DataFrame = requests
        ) -> None:
            with quick.writing() as con:
                con.execute(
                    sql.INSERT_BATCH,
                    [b, run.batches.vendor, spec.model, json.dumps(spec.params), run.run_id, n],
                )
                con.register("new_batch_requests", rows)
                con.execute(sql.INSERT_BATCH_REQUESTS)

        run.writer.patience.attempt(write)
        run.attempts.update(line["custom_id"] for line in chunk)


def _request_row(batch_id: str, job: Job) -> list[Any]:
    return [
        batch_id,
        job.key,
        job.probe_id,
        job.sample,
        job.turn,
        job.parent,
        messages_json(job.messages),
        job.challenge,
        job.letters,
    ]


def _jobs_of(store: Store, batch_id: str) -> dict[str, Job]:
    """A batch's requests as the jobs that sent them, by custom_id."""
    return {
        custom_id: Job(
            probe_id=probe_id,
            messages=tuple(json.loads(messages)),
            sample=sample,
            key=custom_id,
            challenge=bool(challenge),
            letters=letters,
            turn=turn,
            parent=parent_id,
        )
        for custom_id, probe_id, sample, turn, parent_id, messages, challenge, letters in store.query(
            sql.BATCH_REQUESTS, [batch_id]
        )
    }


def _collect(run: _Sending, batch_id: str, state: batch_vendors.State, refund: bool) -> bool:
    """Read an ended batch's results and store them in one transaction with the batch marked
    collected: a kill before it commits leaves the batch to collect again, after it nothing to do.
    The run's progress takes the batch only once this transaction collected it. True when the batch
    is collected (here or by another process), False when its results could not be read this time.
    `refund`: the batch was refused for a full queue while others were out; its requests' sending
    does not count."""
    spec, store = run.spec, run.store
    jobs = _jobs_of(store, batch_id)
    if refund:
        run.attempts.subtract(jobs.keys())
    requests = {key: Request(key, job.messages) for key, job in jobs.items()}
    message, unreadable = state.error, False
    if state.error is not None:  # refused as a whole: each request fails alike
        results: dict[str, Result] = {key: ProviderError(state.error_kind, state.error) for key in jobs}
    else:
        try:
            results = runner.retrying(lambda: run.batches.results(batch_id, requests), spec.model)
        except (ProviderError, runner.RunStopped) as e:
            run.unread[batch_id] += 1
            if run.unread[batch_id] < COLLECT_TRIES:
                return False  # read again at its next poll
            message = f"its results could not be read ({COLLECT_TRIES} tries): {e}"
            error = ProviderError("server", f"{run.batches.vendor} batch {batch_id}: {message}")
            results, unreadable = dict.fromkeys(jobs, error), True
    transcripts: list[tuple[Job, runner.Transcript]] = []
    errors: list[tuple[Job, ProviderError]] = []
    for key, job in jobs.items():
        result = results[key]
        if not isinstance(result, ProviderError):
            transcripts.append(
                (
                    job,
                    runner.transcript(key, job, run.run_id, spec, job.turn, job.parent, job.messages, result),
                )
            )
        elif key in run.planned and not (
            result.retryable and not unreadable and run.attempts[key] < MAX_ATTEMPTS
        ):
            errors.append((job, result))
        # else a later batch may pass (the next plan brings it back), or another plan's request
    status = "failed" if errors or message else "done"
    message = message or (f"{len(errors)} request(s) failed: {errors[0][1]}" if errors else None)

    def write(quick: Store) -> bool:
        with quick.writing() as con:
            if con.execute(sql.BATCH_STATUS, [batch_id]).fetchone()[0] not in ("submitted", "in_progress"):
                return False  # another process collected it first: its progress counts it
            for _, t in transcripts:
                con.execute(sql.INSERT_TRANSCRIPT, t.row())
            for job, error in errors:
                con.execute(
                    sql.INSERT_ERROR,
                    [
                        f"{batch_id}:{job.key}",
                        job.key,
                        job.probe_id,
                        run.run_id,
                        spec.model,
                        error.kind,
                        str(error),
                    ],
                )
            con.execute(sql.ADOPT_BATCH, [run.run_id, batch_id])
            con.execute(
                sql.COLLECTED_BATCH, [status, state.status, len(transcripts), len(errors), message, batch_id]
            )
            return True

    if run.writer.patience.attempt(write):
        _count(run, transcripts, errors)
    run.last_poll.pop(batch_id, None)
    run.unread.pop(batch_id, None)
    return True


def _count(
    run: _Sending, transcripts: list[tuple[Job, runner.Transcript]], errors: list[tuple[Job, ProviderError]]
) -> None:
    """A collected batch in the run's progress: its answers to the plan's requests (a conversation
    done when its last turn is), their cost, and its requests given up."""
    progress = run.writer.progress
    for job, t in transcripts:
        if t.transcript_id not in run.planned:
            continue  # another plan's request: stored, as it is paid for, and counted by no run here
        if t.cost_usd is not None:
            progress.cost_usd += t.cost_usd
        progress.done += (
            not job.challenge
            or runner.next_turn(t.turn, job.messages, t.response, job.letters, run.spec.challenges) is None
        )
    progress.failed += len(errors)
    progress.errors.extend(str(e) for _, e in errors)
    run.given_up.update(job.key for job, _ in errors)


def states(store: Store, run_id: str) -> pd.DataFrame:
    """A run's batches as the store holds them, oldest first."""
    return store.frame(sql.RUN_BATCHES, [run_id])


def shown(store: Store, run_id: str) -> tuple[str, pd.DataFrame | None]:
    """A run's batches as a page or the command line shows them: the summary line and the batches,
    or, while the store is busy, a line saying so and None (shown again at the next refresh)."""
    try:
        batches = states(store, run_id)
    except StoreBusy:
        return "batches: the store is busy", None
    return summary_of(batches), batches


def summary(store: Store, run_id: str) -> str:
    """One line: how many of a run's batches are submitted, in progress, done and failed."""
    return shown(store, run_id)[0]


def summary_of(batches: pd.DataFrame) -> str:
    """One line of the batches `states` read: how many are submitted, in progress, done, failed."""
    counts = Counter(batches["status"])
    order = ("submitted", "in_progress", "done", "failed")
    return "batches: " + ", ".join(f"{counts.get(s, 0)} {s.replace('_', ' ')}" for s in order)
