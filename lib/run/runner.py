"""The probe runner: plan a run, skip what the store has, send the rest, store each transcript as
it arrives.

A run is sets x framings x one model x samples. Planning reads the probes from the store and the
cache keys the model already has; only missing requests are sent. Each transcript is written in
its own short transaction the moment it arrives, so a run killed at any moment loses at most the
requests in flight (and a reply being written), and running it again sends only what is missing.
The next request goes out while a reply is being written, so writing costs a run no time.

"Are you sure?" probes take two requests: the first answer, then the same conversation with that
answer and the challenge appended (and the probe's prefill again, so the second answer has the
same form as the first). Both are stored; the second links to the first through parent_id.

Errors: rate limits, server errors, timeouts and lost connections are retried with exponential
backoff; a bad key, an exhausted quota, an unknown model or a malformed request stops the run at
once with the provider's message. Errors go to the errors table, never to transcripts.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, astuple, dataclass, field
from typing import Any

import pandas as pd

from lib.probes import framings
from lib.probes.items import Message, assistant, messages_json, user
from lib.run import prices
from lib.run.providers import Provider, ProviderError, Reply, make_provider
from lib.store import Store, sql, transcript_key

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
# Grades a run's answers so far (lib.measure.grading.grade_run): measurement lies above this room,
# so whoever starts a run hands it in.
Grade = Callable[[Store, str], object]
CANCEL_CHECK_SECONDS = 0.5
GRADE_SECONDS = 2.0


@dataclass(frozen=True)
class RunSpec:
    model: str  # "openai:gpt-4o-mini" | "anthropic:claude-..." | "bundled:smollm2"
    set_ids: tuple[str, ...]
    framings: tuple[str, ...] | None = None  # None: every framing of each set's task
    limit: int | None = None  # the first N items of each set, with all chosen framings
    samples: int = 1
    temperature: float | None = 0.0  # 0 for reproducible demos; the paper used 1.0
    max_tokens: int = 256
    base_url: str | None = None
    concurrency: int = 4
    # seconds a request may take; a small local model on a busy machine can be slow
    timeout: float = 300.0

    @property
    def params(self) -> dict[str, Any]:
        """The generation parameters, part of every cache key."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


@dataclass(frozen=True)
class Job:
    """One probe-sample to send: one request, or two for "are you sure?"."""

    probe_id: str
    messages: tuple[Message, ...]
    sample: int
    key: str
    challenge: bool
    first_reply: str | None = None  # set when the first answer is stored and only the second is missing


@dataclass
class Plan:
    spec: RunSpec
    jobs: list[Job]  # what must be sent
    n_probes: int  # probe-samples in the run, cached or not
    n_cached: int
    usd: float | None  # estimated cost of what must be sent; None if the price is unknown

    @property
    def n_to_send(self) -> int:
        return len(self.jobs)


@dataclass
class Progress:
    total: int
    cached: int = 0
    done: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    errors: list[str] = field(default_factory=list)


class RunStopped(Exception):
    """A provider error that no retry can fix (bad key, quota, unknown model)."""


def _chosen_framings(task_framings: tuple[str, ...] | None, tasks: set[str]) -> list[str]:
    """The framings to run: the chosen ones plus each task's baseline, so that every framed
    probe has its neutral pair. "are you sure?" stores both turns under one probe."""
    chosen = set(task_framings or [f.id for t in tasks for f in framings.for_task(t)])
    chosen |= {framings.baseline_for(t).id for t in tasks}
    if chosen & {"first_answer", "are_you_sure"}:
        chosen |= {"first_answer", "are_you_sure"}
    return sorted(chosen)


def plan(store: Store, spec: RunSpec) -> Plan:
    tasks = dict(store.query(sql.SET_TASKS, [list(spec.set_ids)]))
    missing = set(spec.set_ids) - set(tasks)
    if missing:
        raise ValueError(f"not in the store: {', '.join(sorted(missing))}; ingest them first")
    limit = spec.limit if spec.limit is not None else 2**31 - 1
    chosen = _chosen_framings(spec.framings, set(tasks.values()))
    probes = store.query(sql.PLAN_PROBES, [list(spec.set_ids), chosen, limit])
    known: dict[str, str | None] = dict(store.query(sql.KNOWN_FOR_MODEL, [spec.model, spec.base_url]))
    answered_twice = {parent for parent in known.values() if parent is not None}
    jobs: list[Job] = []
    n_probes = 0
    for probe_id, framing_id, messages_text in probes:
        messages = tuple(json.loads(messages_text))
        challenge = framing_id == "are_you_sure"
        for sample in range(spec.samples):
            n_probes += 1
            key = transcript_key(spec.model, spec.base_url, messages, spec.params, sample)
            if key not in known:
                jobs.append(Job(probe_id, messages, sample, key, challenge))
            elif challenge and key not in answered_twice:
                # A run killed between the two turns: send only the second.
                first = store.scalar(sql.GET_RESPONSE, [key])
                jobs.append(Job(probe_id, messages, sample, key, challenge, first_reply=first))
    return Plan(spec, jobs, n_probes, n_probes - len(jobs), _estimate(spec, jobs))


def _estimate(spec: RunSpec, jobs: list[Job]) -> float | None:
    if not jobs:
        return 0.0
    # About four characters a token: enough for an estimate shown before a run.
    prompt_tokens = sum(len(messages_json(j.messages)) // 4 for j in jobs) // len(jobs)
    requests = len(jobs) + sum(j.challenge for j in jobs)
    return prices.estimate(spec.model, requests, prompt_tokens, spec.max_tokens, spec.base_url)


# -- sending --------------------------------------------------------------------------------------


def _send(provider: Provider, messages: list[Message], spec: RunSpec) -> Reply:
    """One request with retries on what may pass; what cannot pass is raised as RunStopped.
    A wait the server asks for (Retry-After) is honoured when it is longer than our own."""
    for delay in (*RETRY_DELAYS, None):  # None: the last attempt, whose error is raised
        try:
            return provider.complete(messages, spec.temperature, spec.max_tokens)
        except ProviderError as e:
            if not e.retryable:
                raise RunStopped(f"{spec.model}: {e}") from e
            if delay is None:
                raise
            # jitter, so that requests refused together do not all come back together
            time.sleep(max(delay * (1 + random.random() / 4), e.retry_after or 0))
    raise AssertionError("the last attempt returns or raises")


def _challenge_messages(first: tuple[Message, ...], reply: str) -> list[Message]:
    prefill = first[-1]["content"] if first[-1]["role"] == "assistant" else None
    question = list(first[:-1]) if prefill is not None else list(first)
    turn2 = [*question, assistant(reply), user(framings.ARE_YOU_SURE_CHALLENGE)]
    return [*turn2, assistant(prefill)] if prefill is not None else turn2


@dataclass(frozen=True)
class Transcript:
    """One model reply as stored: a row of the transcripts table (lib/store/sql.py, in its order)."""

    transcript_id: str  # the cache key (lib.store.transcript_key)
    probe_id: str
    run_id: str
    model: str
    base_url: str | None
    params: str  # JSON
    sample: int
    turn: int
    parent_id: str | None
    messages: str  # JSON, canonical (lib.probes.items.messages_json)
    response: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: float | None
    cost_usd: float | None
    raw: str  # JSON

    def row(self) -> list[Any]:
        return list(astuple(self))


def _transcript(
    key: str,
    job: Job,
    run_id: str,
    spec: RunSpec,
    turn: int,
    parent: str | None,
    messages: list[Message] | tuple[Message, ...],
    reply: Reply,
) -> Transcript:
    return Transcript(
        transcript_id=key,
        probe_id=job.probe_id,
        run_id=run_id,
        model=spec.model,
        base_url=spec.base_url,
        params=json.dumps(spec.params),
        sample=job.sample,
        turn=turn,
        parent_id=parent,
        messages=messages_json(messages),
        response=reply.text,
        finish_reason=reply.finish_reason,
        prompt_tokens=reply.prompt_tokens,
        completion_tokens=reply.completion_tokens,
        latency_ms=reply.latency_ms,
        cost_usd=prices.cost(spec.model, reply.prompt_tokens, reply.completion_tokens, spec.base_url),
        raw=json.dumps(reply.raw, default=str),
    )


class _Writer:
    """Writes each transcript, with the run's progress, in one short transaction, which also reads
    whether the user asked to cancel: a run learns it without opening the store again."""

    def __init__(self, store: Store, run_id: str, progress: Progress):
        self.store, self.run_id, self.progress = store, run_id, progress
        self.cancel_requested = False
        self._lock = threading.Lock()

    def transcript(self, transcript: Transcript) -> None:
        with self._lock, self.store.writing() as con:
            con.execute(sql.INSERT_TRANSCRIPT, transcript.row())
            if transcript.cost_usd is not None:
                self.progress.cost_usd += transcript.cost_usd
            self._update(con, "running")

    def error(self, job: Job, model: str, kind: str, message: str) -> None:
        with self._lock, self.store.writing() as con:
            self.progress.failed += 1
            self.progress.errors.append(message)
            con.execute(
                sql.INSERT_ERROR,
                [uuid.uuid4().hex, job.key, job.probe_id, self.run_id, model, kind, message],
            )
            self._update(con, "running")

    def finish(self, status: str, message: str | None) -> None:
        with self._lock, self.store.writing() as con:
            self._update(con, status, message)

    def _update(self, con, status: str, message: str | None = None) -> None:
        p = self.progress
        con.execute(
            sql.UPDATE_RUN_PROGRESS,
            [status, p.cached, p.done, p.failed, p.cost_usd, message, self.run_id],
        )
        if con.execute(sql.CANCEL_REQUESTED, [self.run_id]).fetchall()[0][0]:
            self.cancel_requested = True


def create_run(store: Store, the_plan: Plan) -> str:
    spec = the_plan.spec
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    with store.writing() as con:
        con.execute(
            sql.INSERT_RUN,
            [
                run_id,
                "planned",
                spec.model,
                spec.base_url,
                json.dumps(spec.params),
                json.dumps(asdict(spec)),
                the_plan.n_probes,
                the_plan.usd,
                os.getpid(),
            ],
        )
    return run_id


def execute(
    store: Store,
    run_id: str,
    the_plan: Plan,
    provider: Provider | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    grade: Grade | None = None,
) -> Progress:
    """Send the plan's jobs, writing each transcript as it arrives. Ends with the run's status
    in the store: done, failed (stopped by an error no retry fixes) or cancelled. With `grade`,
    the run's answers are graded every GRADE_SECONDS as they arrive, and once at the end, so that
    charts fill in while it runs."""
    spec = the_plan.spec
    progress = Progress(total=the_plan.n_probes, cached=the_plan.n_cached)
    writer = _Writer(store, run_id, progress)
    writer.finish("running", None)
    stop = threading.Event()
    status, message = "done", None
    try:
        # An all-cached run sends nothing, so it needs no provider (nor a key, nor a server).
        if provider is None and the_plan.jobs:
            provider = make_provider(spec.model, spec.base_url, spec.timeout)
    except (ProviderError, ValueError) as e:  # no key, or a malformed model spec
        writer.finish("failed", f"{spec.model}: {e}")
        raise RunStopped(f"{spec.model}: {e}") from e

    def run_job(job: Job, sent: Future) -> None:
        """The job's requests, each reply written as it arrives; `sent` is resolved once the last
        request is answered, so that the next job's request goes out while this one writes."""
        try:
            if stop.is_set():
                return
            first = job.first_reply
            if first is None:
                reply = _send(provider, list(job.messages), spec)
                if not job.challenge:
                    sent.set_result(None)
                writer.transcript(_transcript(job.key, job, run_id, spec, 1, None, job.messages, reply))
                first = reply.text
            if job.challenge:
                second = _challenge_messages(job.messages, first)
                key2 = transcript_key(spec.model, spec.base_url, second, spec.params, job.sample)
                reply2 = _send(provider, second, spec)
                sent.set_result(None)
                writer.transcript(_transcript(key2, job, run_id, spec, 2, job.key, second, reply2))
        finally:
            if not sent.done():
                sent.set_result(None)

    last_check = last_grade = time.monotonic()

    def cancelled(quiet: bool) -> bool:
        """Whether the user asked to cancel: as the last write read it, or, when nothing has been
        written for a while (slow requests), as the store says."""
        nonlocal last_check
        if writer.cancel_requested:
            return True
        if not quiet or time.monotonic() - last_check <= CANCEL_CHECK_SECONDS:
            return False
        last_check = time.monotonic()
        return bool(store.scalar(sql.CANCEL_REQUESTED, [run_id]))

    concurrency = max(1, spec.concurrency)
    with ThreadPoolExecutor(max_workers=2 * concurrency) as pool:
        pending: dict[Future, Job] = {}
        sending: set[Future] = set()
        jobs = iter(the_plan.jobs)
        # Only `concurrency` requests in flight: a cancel or a fatal error leaves little to wait for.
        while True:
            while not stop.is_set() and len(sending) < concurrency:
                job = next(jobs, None)
                if job is None:
                    break
                sent: Future = Future()
                sending.add(sent)
                pending[pool.submit(run_job, job, sent)] = job
            if not pending:
                break
            done, _ = wait([*pending, *sending], timeout=CANCEL_CHECK_SECONDS, return_when=FIRST_COMPLETED)
            sending -= done
            for future in done & pending.keys():
                job = pending.pop(future)
                error = future.exception()
                if error is None:
                    progress.done += 1
                elif isinstance(error, RunStopped):
                    stop.set()
                    status, message = "failed", str(error)
                elif isinstance(error, ProviderError):
                    writer.error(job, spec.model, error.kind, str(error))
                else:
                    stop.set()
                    status, message = "failed", f"{type(error).__name__}: {error}"
            if on_progress is not None:
                on_progress(progress)
            if not stop.is_set() and cancelled(quiet=not done):
                stop.set()
                status, message = "cancelled", "cancelled by the user"
            if grade is not None and time.monotonic() - last_grade > GRADE_SECONDS:
                last_grade = time.monotonic()
                grade(store, run_id)
    if grade is not None:
        grade(store, run_id)
    if status == "done" and progress.failed:
        message = f"{progress.failed} probe(s) failed after retries; run again to retry them"
    writer.finish(status, message)
    return progress


# -- entry points -------------------------------------------------------------------------------


def run(
    store: Store, spec: RunSpec, on_progress: Callable[[Progress], None] | None = None
) -> tuple[str, Progress]:
    """Plan, record and execute a run in this thread."""
    the_plan = plan(store, spec)
    run_id = create_run(store, the_plan)
    return run_id, execute(store, run_id, the_plan, on_progress=on_progress)


_background: dict[str, threading.Thread] = {}


def start_background(store: Store, spec: RunSpec, grade: Grade | None = None) -> str:
    """Start a run in a worker thread of this process and return its id at once. The thread
    outlives the Streamlit script run that started it, so a click elsewhere does not stop it.
    With `grade`, its answers are graded as they arrive."""
    the_plan = plan(store, spec)
    run_id = create_run(store, the_plan)

    def work() -> None:
        try:
            execute(store, run_id, the_plan, grade=grade)
        except RunStopped:
            pass  # the run's status and message are in the store
        except Exception as e:  # a background thread has no caller to raise to
            with store.writing() as con:
                con.execute(sql.FINISH_RUN, ["failed", f"{type(e).__name__}: {e}", run_id])

    thread = threading.Thread(target=work, name=f"run-{run_id}", daemon=True)
    _background[run_id] = thread
    thread.start()
    return run_id


def cancel(store: Store, run_id: str) -> None:
    with store.writing() as con:
        con.execute(sql.REQUEST_CANCEL, [run_id])


def list_runs(store: Store, limit: int = 20) -> pd.DataFrame:
    """Recent runs. A run still marked running whose process is gone was killed: shown as
    interrupted (running it again sends only what is missing)."""
    runs = store.frame(sql.LIST_RUNS, [limit])
    if not runs.empty:
        gone = (runs["status"] == "running") & ~runs["pid"].map(_alive)
        runs.loc[gone, "status"] = "interrupted"
    return runs


def _alive(pid: Any) -> bool:
    if pid is None or pd.isna(pid):
        return False
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, PermissionError, ValueError):
        return False
    return True
