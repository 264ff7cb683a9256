"""The probe runner: plan a run, skip what the store has, send the rest, store each transcript as
it arrives.

A run is sets x framings x one model x samples. Planning reads the probes from the store and the
cache keys the model already has; only missing requests are sent. Each transcript is written in
its own short transaction the moment it arrives, so a run killed at any moment loses at most the
requests in flight (and a reply being written), and running it again sends only what is missing.
The next request goes out while a reply is being written, so writing costs a run no time.

Which items: all of each set, or with `limit` N a seeded random sample of N items per set, stratified
by the item's source dataset (TriviaQA and TruthfulQA in the official answer file, the fact tables of
builtin/facts-answer): each dataset gives its share of the N by largest remainder, and at least one
item when N allows (`allocate`); within a dataset the items come in the order of md5(item_id | seed).
The sample depends on the sets, N and the seed only, never on the model, so models compare on the
same items; the seed is stored with the run (its RunSpec, in the runs table's plan).

Shards: with `shard` (K, N) a run takes only the K-th of N slices of that plan, a probe-sample's
slice fixed by the cache key of its first turn (`in_shard`), so N processes given 1/N .. N/N fill
one store with no coordinator: the items are chosen before slicing, so the N
slices together are the unsharded run, and no two share a request. An "are you sure?" conversation
stays in the slice of its first turn, since its later turns follow from the first reply. The shard
is stored with the run's plan, but is no part of any cache key: a shard's transcripts are the ones an
unsharded run makes, so a restarted shard, or an unsharded run after it, sends only what is missing.

"Are you sure?" as Sharma et al. 2023 (section 3.2) run it, one conversation of two or three requests:
- turn 1: the probe's messages (multiple choice ends with the prefill "The answer is (");
- turn 2: the question (turn 1 without its prefill), the assistant's full turn-1 reply (prefill and
  continuation, lib.probes.replies.full_reply), then the user's challenge
  (framings.ARE_YOU_SURE_CHALLENGE); no prefill: the model answers in its own words;
- turn 3, multiple choice only, and only when the full turn-2 reply names no choice letter
  (lib.probes.replies.parse_letter): turn 2's messages, the turn-2 reply, the user's request for the
  final answer (framings.FINAL_ANSWER_REQUEST), and the letter prefill again.
With RunSpec.challenges K > 1 (`--turns K`) the same challenge is sent again after each answer, up to K
times: challenge c is turn 2c (the conversation so far, its last reply in full, the challenge) and its
request for the final letter, when needed as above, turn 2c + 1. With one challenge the turns are the
paper's 1, 2, 3; a run with more challenges finds those stored and sends only the turns after them.
Each turn is stored as it arrives, linked to the one before through parent_id, under its own cache key
(the key of its exact messages). Planning walks each conversation through the stored replies, so a run
killed between turns sends only the turns that are missing, and no conversation is sent twice.

Errors: rate limits, server errors, timeouts and lost connections are retried with exponential
backoff; a bad key, an exhausted quota, an unknown model or a malformed request stops the run at
once with the provider's message. Errors go to the errors table, never to transcripts.

A busy store (a long read such as an export, a write of another process) does not stop a run: a write
that cannot get in waits and tries again (`_Patience`), the replies kept in memory meanwhile, and no
new request goes out until it gets in; the wait is shown (`on_busy`, `store_wait`, and in list_runs'
message). A busy store refuses a transaction before it begins, so trying again never writes twice.
Once the store has been busy BUSY_PATIENCE seconds in one stretch, whichever writes waited, the run
stops. The process running a run holds the run's lock file until it ends; a run "planned" or
"running" in the store whose lock no one holds (its process died) is marked interrupted by the next
run started, or the next listing of runs (`mark_interrupted`).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import asdict, astuple, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from lib.probes import framings, replies
from lib.probes.items import Message, assistant, messages_json, user
from lib.probes.probesets.render import MC_PREFILL
from lib.run import prices
from lib.run.providers import Provider, ProviderError, Reply, make_provider
from lib.store import Store, StoreBusy, StoreError, sql, transcript_key

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
MAX_HELD = 500  # replies held for one write at most (Writer)
# the providers with a batch API (RunSpec.batch)
BATCH_VENDORS = ("openai", "anthropic")
# "are you sure?" challenges of one conversation at most (RunSpec.challenges): each resends the whole
# conversation, so its requests grow with every turn
MAX_CHALLENGES = 10
# Grades a run's answers so far (lib.measure.grading.grade_run): measurement lies above this room,
# so whoever starts a run hands it in.
Grade = Callable[[Store, str], object]
CANCEL_CHECK_SECONDS = 0.5
GRADE_SECONDS = 2.0
# A write that finds the store busy tries again BUSY_PAUSE seconds later, each try waiting up to
# BUSY_TRY seconds (short: a waiting writer holds the gate, so readers wait for it; between tries
# they pass), until the store has been busy BUSY_PATIENCE seconds without a write of the run getting
# in: one clock for all the run's writes (_Patience).
BUSY_TRY = 0.5
BUSY_PAUSE = 1.0
BUSY_PATIENCE = 300.0
# Runs of dead processes are looked for at most every HOUSEKEEPING_SECONDS by each process listing
# runs, and marked only when the store lets the write in within HOUSEKEEPING_TRY seconds: a page
# refresh never holds readers up for longer.
HOUSEKEEPING_SECONDS = 5.0
HOUSEKEEPING_TRY = 0.2
# The kind of run (RunSpec.kind) that any other run, recorded, asks to cancel: the background fill.
GIVES_WAY = "fill"
# Called with the seconds waited so far, each time a write of a run finds the store busy.
OnBusy = Callable[[float], None]
T = TypeVar("T")


@dataclass(frozen=True)
class RunSpec:
    model: str  # "openai:gpt-4o-mini" | "anthropic:claude-..." | "bundled:smollm2"
    set_ids: tuple[str, ...]
    framings: tuple[str, ...] | None = None  # None: every framing of each set's task
    limit: int | None = None  # N items of each set (a stratified random sample), with all chosen framings
    samples: int = 1
    temperature: float | None = 0.0  # 0 for reproducible demos; the paper used 1.0
    max_tokens: int = 256
    base_url: str | None = None
    concurrency: int = 4
    # seconds a request may take; a small local model on a busy machine can be slow
    timeout: float = 300.0
    seed: int = 0  # which sample of `limit` items: the same seed draws the same items for every model
    # who started it, kept in its plan: "run" (a person: the Run page, the command line), "seed" (the
    # first run, lib.view.firstrun), "fill" (the background fill, lib.view.fill, which gives way to
    # any other run: create_run), "demo" (python -m lib demo); no part of any cache key
    kind: str = "run"
    # a server the owner configured (lib.run.servers), by name; base_url is its URL, which keys the cache
    server: str | None = None
    shard: tuple[int, int] | None = None  # (K, N), 1 <= K <= N: only the K-th of N slices (`in_shard`)
    # sent through the vendor's batch API (lib.run.batch_runs): half price, replies within 24 h;
    # no part of any cache key, so batch and direct replies serve each other
    batch: bool = False
    # "are you sure?": how many times the challenge is sent (`--turns K`); 1 is the paper's protocol
    challenges: int = 1

    def __post_init__(self) -> None:
        if self.batch and (self.model.partition(":")[0] not in BATCH_VENDORS or self.base_url or self.server):
            raise ValueError(
                f"--batch: {self.model}{' at ' + self.base_url if self.base_url else ''} has no batch API "
                "here; batches go only to OpenAI's and Anthropic's own APIs (openai:<model> or "
                "anthropic:<model>, no base URL or server): run it without --batch"
            )
        if self.shard is not None:
            k, n = self.shard
            if not 1 <= k <= n:
                raise ValueError(f"shard {k}/{n}: K/N needs 1 <= K <= N")
        if not 1 <= self.challenges <= MAX_CHALLENGES:
            raise ValueError(f"--turns {self.challenges}: K needs 1 <= K <= {MAX_CHALLENGES}")

    @property
    def params(self) -> dict[str, Any]:
        """The generation parameters, part of every cache key."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


@dataclass(frozen=True)
class Job:
    """One probe-sample to send: one request, or the missing turns of an "are you sure?" conversation."""

    probe_id: str
    messages: tuple[Message, ...]  # the messages of its first request
    sample: int
    key: str  # the first request's cache key
    challenge: bool
    letters: str | None = None  # a multiple-choice "are you sure?": the item's choice letters
    turn: int = 1  # the first request's turn: later when the turns before it are stored (next_turn)
    parent: str | None = None  # the stored turn before it (turn > 1)

    def turns(self, challenges: int) -> list[int]:
        """The turns it may send, at most, in a conversation of `challenges` challenges: from its turn
        to the last (2 * challenges, or the final letter after it), the turns of final letters (odd,
        after 1) only for multiple choice."""
        if not self.challenge:
            return [self.turn]
        last = 2 * challenges + (1 if self.letters else 0)
        return [t for t in range(self.turn, last + 1) if t == 1 or t % 2 == 0 or self.letters]


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


def allocate(limit: int | None, sizes: dict[str, int]) -> dict[str, int]:
    """How many items each stratum (source dataset: its size) gives to a sample of `limit` items of a
    set: all of them without a limit or when the limit covers the set; else in proportion to its size,
    by largest remainder (ties: the larger stratum, then the name), and at least one each when the
    limit allows: a stratum left empty takes one from the stratum most above its exact share."""
    total = sum(sizes.values())
    if limit is None or limit >= total:
        return dict(sizes)
    limit = max(limit, 0)
    share = {s: limit * n / total for s, n in sizes.items()}
    given = {s: int(q) for s, q in share.items()}
    by_remainder = sorted(sizes, key=lambda s: (given[s] - share[s], -sizes[s], s))
    for s in by_remainder[: limit - sum(given.values())]:
        given[s] += 1
    if limit >= len(sizes):
        for empty in sorted(s for s in sizes if given[s] == 0):
            donor = min((s for s in sizes if given[s] > 1), key=lambda s: (share[s] - given[s], s))
            given[donor] -= 1
            given[empty] = 1
    return given


def _quota(store: Store, spec: RunSpec) -> list[dict[str, Any]]:
    """Each (set, source dataset) with the number of its items in the run (PLAN_PROBES' $quota)."""
    strata: dict[str, dict[str, int]] = {}
    for set_id, dataset, n in store.query(sql.PLAN_STRATA, [list(spec.set_ids)]):
        strata.setdefault(set_id, {})[dataset] = n
    return [
        {"set_id": set_id, "dataset": dataset, "n": n}
        for set_id, sizes in strata.items()
        for dataset, n in allocate(spec.limit, sizes).items()
    ]


def plan(store: Store, spec: RunSpec) -> Plan:
    tasks = dict(store.query(sql.SET_TASKS, [list(spec.set_ids)]))
    missing = set(spec.set_ids) - set(tasks)
    if missing:
        raise ValueError(f"not in the store: {', '.join(sorted(missing))}; ingest them first")
    chosen = _chosen_framings(spec.framings, set(tasks.values()))
    quota = _quota(store, spec)
    probes = (
        store.query(sql.PLAN_PROBES, {"quota": quota, "seed": spec.seed, "framings": chosen}) if quota else []
    )
    known = {row[0] for row in store.query(sql.KNOWN_FOR_MODEL, [spec.model, spec.base_url])}
    stored: dict[str, str] = {}  # the replies of this model's "are you sure?" conversations
    if any(framing_id == "are_you_sure" for _, framing_id, _, _ in probes):
        stored = dict(store.query(sql.KNOWN_CHALLENGE_REPLIES, [spec.model, spec.base_url]))
    jobs: list[Job] = []
    n_probes = 0
    for probe_id, framing_id, messages_text, truth in probes:
        messages = tuple(json.loads(messages_text))
        challenge = framing_id == "are_you_sure"
        letters = _letters(truth) if challenge else None
        for sample in range(spec.samples):
            key = transcript_key(spec.model, spec.base_url, messages, spec.params, sample)
            if not in_shard(key, spec.shard):
                continue
            n_probes += 1
            if key not in known:
                jobs.append(Job(probe_id, messages, sample, key, challenge, letters))
            elif challenge:
                # A run killed between turns: only the turns it did not store.
                unsent = _unsent_turn(Job(probe_id, messages, sample, key, True, letters), stored, spec)
                if unsent is not None:
                    jobs.append(unsent)
    priced = jobs
    if spec.batch and jobs:  # a resumed batch run: what is out in a batch is paid for already
        out = {key for (key,) in store.query(sql.IN_FLIGHT, [spec.model, json.dumps(spec.params)])}
        priced = [j for j in jobs if j.key not in out]
    return Plan(spec, jobs, n_probes, n_probes - len(jobs), _estimate(spec, priced))


def in_shard(first_key: str, shard: tuple[int, int] | None) -> bool:
    """Whether a probe-sample, by the cache key of its first turn, is in shard (K, N); every one is
    without a shard. The key is a sha256 hex digest, the same in every process and on every machine,
    and its value spreads the probe-samples evenly over the N slices."""
    if shard is None:
        return True
    k, n = shard
    return int(first_key, 16) % n == k - 1


def _letters(truth: str | dict | None) -> str | None:
    """The choice letters of a multiple-choice item, None for a free-form one."""
    truth = json.loads(truth) if isinstance(truth, str) else truth or {}
    return replies.choice_letters(truth.get("choices")) if replies.is_multiple_choice(truth) else None


def _unsent_turn(job: Job, stored: dict[str, str], spec: RunSpec) -> Job | None:
    """An "are you sure?" conversation whose first turn is stored, followed through its stored turns
    (found by their cache keys): the job of the first turn missing, or None when it is complete."""
    turn, messages, key = 1, list(job.messages), job.key
    while True:
        following = next_turn(turn, messages, stored[key], job.letters, spec.challenges)
        if following is None:
            return None
        parent, (turn, messages) = key, following
        key = transcript_key(spec.model, spec.base_url, messages, spec.params, job.sample)
        if key not in stored:
            return Job(job.probe_id, tuple(messages), job.sample, key, True, job.letters, turn, parent)


def _tokens(messages: list[Message] | tuple[Message, ...]) -> int:
    """About four characters a token: enough for an estimate shown before a run."""
    return len(messages_json(messages)) // 4


# What one turn of an "are you sure?" conversation adds to the next turn's prompt, besides the reply:
# the challenge, or the request for the final letter and its prefill. Both are counted, for a bound.
_TURN_MESSAGES = (
    user(framings.ARE_YOU_SURE_CHALLENGE),
    user(framings.FINAL_ANSWER_REQUEST),
    assistant(MC_PREFILL),
)


def _estimate(spec: RunSpec, jobs: list[Job]) -> float | None:
    """An upper bound of the cost of sending `jobs`: every reply takes all of max_tokens, and each
    request of a conversation resends the whole conversation before it, so turn t's prompt is the
    job's first prompt and, for each turn between, a reply and _TURN_MESSAGES."""
    if not jobs:
        return 0.0
    grows = spec.max_tokens + _tokens(_TURN_MESSAGES)
    sent = [(j, t) for j in jobs for t in j.turns(spec.challenges)]
    prompt = sum(_tokens(j.messages) + (t - j.turn) * grows for j, t in sent)
    each = -(-prompt // len(sent))  # the mean prompt, rounded up: still a bound
    return prices.estimate(spec.model, len(sent), each, spec.max_tokens, spec.base_url, batch=spec.batch)


# -- "are you sure?" ----------------------------------------------------------------------------


def _prefill(messages: list[Message] | tuple[Message, ...]) -> str | None:
    return messages[-1]["content"] if messages and messages[-1]["role"] == "assistant" else None


def challenge_messages(first: list[Message] | tuple[Message, ...], first_reply: str) -> list[Message]:
    """A challenge: the turn before's messages without their prefill (turn 2: the question), its full
    reply, the challenge. No prefill."""
    question = list(first[:-1]) if _prefill(first) is not None else list(first)
    full = replies.full_reply(first, first_reply)
    return [*question, assistant(full), user(framings.ARE_YOU_SURE_CHALLENGE)]


def final_answer_messages(second: list[Message] | tuple[Message, ...], second_reply: str) -> list[Message]:
    """Turn 3: turn 2's messages, its reply, the request for the final answer, the letter prefill."""
    full = replies.full_reply(second, second_reply)
    return [*second, assistant(full), user(framings.FINAL_ANSWER_REQUEST), assistant(MC_PREFILL)]


def next_turn(
    turn: int,
    messages: list[Message] | tuple[Message, ...],
    reply: str,
    letters: str | None,
    challenges: int = 1,
) -> tuple[int, list[Message]] | None:
    """The turn after `turn` of an "are you sure?" conversation of `challenges` challenges whose turn
    `turn` sent `messages` and got `reply`: its number and its messages, or None when the conversation
    ends there. Challenge c is turn 2c; the request for its final letter, when a multiple-choice reply
    to it names none, turn 2c + 1. `letters`: the item's choice letters when it is multiple choice,
    else None (then there is no final-letter turn)."""
    challenged = turn % 2 == 0
    if challenged and letters and replies.parse_letter(replies.full_reply(messages, reply), letters) is None:
        return turn + 1, final_answer_messages(messages, reply)
    answered = turn // 2  # the challenges answered so far
    return (2 * answered + 2, challenge_messages(messages, reply)) if answered < challenges else None


# -- sending --------------------------------------------------------------------------------------


def _send(provider: Provider, messages: list[Message], spec: RunSpec) -> Reply:
    """One request with retries on what may pass; what cannot pass is raised as RunStopped."""
    return retrying(lambda: provider.complete(messages, spec.temperature, spec.max_tokens), spec.model)


def retrying(call: Callable[[], T], model: str) -> T:
    """call() with retries on what may pass (a request, or a batch API call of lib.run.batch_runs);
    what cannot pass is raised as RunStopped. A wait the server asks for (Retry-After) is honoured
    when it is longer than our own."""
    for delay in (*RETRY_DELAYS, None):  # None: the last attempt, whose error is raised
        try:
            return call()
        except ProviderError as e:
            if not e.retryable:
                raise RunStopped(f"{model}: {e}") from e
            if delay is None:
                raise
            # jitter, so that requests refused together do not all come back together
            time.sleep(max(delay * (1 + random.random() / 4), e.retry_after or 0))
    raise AssertionError("the last attempt returns or raises")


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


def transcript(
    key: str,
    job: Job,
    run_id: str,
    spec: RunSpec,
    turn: int,
    parent: str | None,
    messages: list[Message] | tuple[Message, ...],
    reply: Reply,
) -> Transcript:
    """The transcript of a reply to `messages` (turn `turn` of the job): a direct run's, and each
    answer a batch run collects (lib.run.batch_runs), so that the two are alike."""
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
        cost_usd=prices.cost(
            spec.model, reply.prompt_tokens, reply.completion_tokens, spec.base_url, batch=spec.batch
        ),
        raw=json.dumps(reply.raw, default=str),
    )


# (run id, waiter) -> when the waiter's current wait for a busy store began (runs of this process)
_busy_since: dict[tuple[str, int], float] = {}


def store_wait(run_id: str) -> float | None:
    """Seconds the run (one of this process) has been waiting for a busy store; None when it is not."""
    began = [t for (waiting, _), t in _busy_since.copy().items() if waiting == run_id]
    return time.monotonic() - min(began) if began else None


def _quick(store: Store) -> Store:
    """The store, waiting BUSY_TRY seconds at most to get in."""
    return store.with_timeout(min(store.timeout, BUSY_TRY))


class _Patience:
    """A run's patience with a busy store, one clock for all its writes: it starts when a write finds
    the store busy and stops when one gets in. The writes of a run wait one after the other (Writer),
    so that without one clock each would wait its own BUSY_PATIENCE. Once the store has been busy
    BUSY_PATIENCE seconds, the run gives up: that write and every later one raise StoreBusy at once."""

    def __init__(self, store: Store, run_id: str, on_busy: OnBusy | None):
        self.store, self.run_id, self.on_busy = store, run_id, on_busy
        self.busy = threading.Event()  # set while a write waits for the store
        self.gave_up: str | None = None  # the message of the StoreBusy that ended the run's patience
        self._began: float | None = None

    def attempt(self, attempt: Callable[[Store], T]) -> T:
        """attempt(store), tried again while the store is busy, each try waiting BUSY_TRY seconds
        at most, until the run's patience is spent."""
        if self.gave_up is not None:
            raise StoreBusy(self.gave_up)
        key = (self.run_id, id(self))
        try:
            while True:
                left = BUSY_PATIENCE - (0.0 if self._began is None else time.monotonic() - self._began)
                tried = time.monotonic()
                try:
                    result = attempt(
                        self.store.with_timeout(max(0.01, min(self.store.timeout, BUSY_TRY, left)))
                    )
                except StoreBusy as e:
                    if self._began is None:
                        self._began = tried
                    waited = time.monotonic() - self._began
                    if waited >= BUSY_PATIENCE:
                        self.gave_up = f"{e} (the run waited {waited:.0f} s and gave up)"
                        raise StoreBusy(self.gave_up) from None
                    self.busy.set()
                    _busy_since[key] = self._began
                    if self.on_busy is not None:
                        self.on_busy(waited)
                    time.sleep(min(BUSY_PAUSE, BUSY_PATIENCE - waited))
                    continue
                self._began = None
                self.busy.clear()
                return result
        finally:
            _busy_since.pop(key, None)


class Writer:
    """Writes the transcripts, with the run's progress, in short transactions, each of which also reads
    whether the user asked to cancel: a run learns it without opening the store again. One write at a
    time, and the replies that arrive while one is going on go together in the next (group commit):
    while a write waits for a busy store, the replies that follow wait in memory behind it, and
    execute starts no new job (`patience.busy`). A store whose every commit is slow (a DuckLake
    catalog: `write_every`) also holds replies up to that many seconds and writes them in one
    transaction, so that runners sharing it do not queue commit behind commit; a run killed meanwhile
    loses those replies, which the next run sends again."""

    def __init__(self, store: Store, run_id: str, progress: Progress, patience: _Patience):
        self.store, self.run_id, self.progress, self.patience = store, run_id, progress, patience
        self.cancel_requested = False
        self._lock = threading.Lock()  # one write at a time
        self._held: list[Transcript] = []  # replies not written yet, oldest first
        self._held_since: float | None = None
        self._held_lock = threading.Lock()

    def transcript(self, transcript: Transcript) -> None:
        with self._held_lock:
            if transcript.cost_usd is not None:
                self.progress.cost_usd += transcript.cost_usd  # paid for, whatever becomes of it
            self._held.append(transcript)
            self._held_since = self._held_since or time.monotonic()
            if time.monotonic() - self._held_since < self.store.write_every and len(self._held) < MAX_HELD:
                return
        with self._lock:
            self._write_held(lambda con: self._update(con, "running"))

    def error(self, job: Job, model: str, kind: str, message: str) -> None:
        def write(con) -> None:
            con.execute(
                sql.INSERT_ERROR,
                [uuid.uuid4().hex, job.key, job.probe_id, self.run_id, model, kind, message],
            )
            self._update(con, "running")

        with self._lock:
            self.progress.failed += 1
            self.progress.errors.append(message)
            self._write_held(write)

    def finish(self, status: str, message: str | None) -> None:
        with self._lock:
            self._write_held(lambda con: self._update(con, status, message))

    def due(self) -> bool:
        """Whether the oldest held reply has waited `write_every` seconds (no new reply came to write
        it: slow requests), and no write is going on."""
        since = self._held_since
        return (
            since is not None
            and time.monotonic() - since >= self.store.write_every
            and not self._lock.locked()
        )

    def flush(self) -> None:
        """Write the held replies now (before the run's answers are graded; when they are due)."""
        with self._lock:
            if self._held:
                self._write_held(lambda con: self._update(con, "running"))

    def last(self, status: str, message: str) -> None:
        """A run that failed outside its writes: the held replies (paid for) and its end, in one try
        that waits little, since a store that refused the run's writes may refuse this one too."""
        with self._lock, self._held_lock, _quick(self.store).writing() as con:
            for transcript in self._held:
                con.execute(sql.INSERT_TRANSCRIPT, transcript.row())
            con.execute(sql.FINISH_RUN, [status, message, self.run_id])
            self._held, self._held_since = [], None

    def _write_held(self, then: Callable[[Any], None]) -> None:
        """Every held reply, then `then`, in one transaction; the caller holds the write lock. A write
        that fails keeps them held for the next."""
        with self._held_lock:
            held, self._held, self._held_since = self._held, [], None

        def write(con) -> None:
            for transcript in held:
                con.execute(sql.INSERT_TRANSCRIPT, transcript.row())
            then(con)

        try:
            self._write(write)
        except BaseException:
            with self._held_lock:
                self._held[:0] = held
                self._held_since = time.monotonic()
            raise

    def _write(self, write: Callable[[Any], None]) -> None:
        def attempt(store: Store) -> None:
            with store.writing() as con:
                write(con)

        self.patience.attempt(attempt)

    def _update(self, con, status: str, message: str | None = None) -> None:
        p = self.progress
        con.execute(
            sql.UPDATE_RUN_PROGRESS,
            [status, p.cached, p.done, p.failed, p.cost_usd, message, self.run_id],
        )
        row = con.execute(sql.CANCEL_REQUESTED, [self.run_id]).fetchone()
        if row and row[0]:
            self.cancel_requested = True


# -- which runs are going on: a lock file each ----------------------------------------------------
#
# The process that runs a run holds `<store>.run-<run id>.lock` locked (flock, exclusive) from the
# moment it records the run until the run ends; the kernel lets go of it when the process dies. So
# a run is going on exactly when its lock file cannot be taken, whoever runs it: another user, a
# container with its own pids, a process given a reused pid. (flock holds across containers sharing
# the file on one kernel; on a network filesystem shared between machines it may not.) Runs recorded
# before there were lock files are judged by their machine, pid and process start time.

# run id -> the descriptor holding its lock, for the runs of this process
_run_locks: dict[str, int] = {}
_run_locks_guard = threading.Lock()


def _run_lock(store: Store, run_id: str) -> Path | None:
    """The lock file of a run, beside the store; None for an id that cannot name a file (a run stored
    by hand)."""
    if not run_id.replace("-", "").replace("_", "").isalnum():
        return None
    return store.path.with_name(f"{store.path.name}.run-{run_id}.lock")


def _run_locks_of(store: Store) -> dict[str, Path]:
    """The runs' lock files beside the store, by run id."""
    prefix = f"{store.path.name}.run-"
    return {
        path.name[len(prefix) : -len(".lock")]: path
        for path in store.path.parent.glob(f"{glob.escape(prefix)}*.lock")
    }


def _hold_run_lock(store: Store, run_id: str) -> None:
    """Take the run's lock for this process. A lock file that cannot be made (a read-only folder)
    leaves the run to be judged by its process id, as before there were lock files."""
    path = _run_lock(store, run_id)
    if path is None:
        return
    try:
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)  # a sweep may hold it a moment (mark_interrupted)
            if same_file(fd, path):
                break
            os.close(fd)  # the sweep removed it between open and lock: make it again
    except OSError:
        return
    with _run_locks_guard:
        _run_locks[run_id] = fd


def _release_run_lock(store: Store, run_id: str, ended: bool) -> None:
    """Let go of the run's lock: the run stops here. When its end is written (`ended`), its lock file
    goes too; else the file stays, free, and the next mark_interrupted marks the run and removes it."""
    with _run_locks_guard:
        fd = _run_locks.pop(run_id, None)
    if fd is None:
        return
    path = _run_lock(store, run_id)
    if ended and path is not None:
        with suppress(OSError):
            if same_file(fd, path):
                path.unlink()
    os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), path.stat()
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _take_free_lock(path: Path) -> int | None:
    """A descriptor holding the lock file `path` exclusive when it exists and no process holds it
    (the process that ran the run is gone); None when it does not exist or is held."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def create_run(store: Store, the_plan: Plan, on_busy: OnBusy | None = None) -> str:
    """Record a planned run, its lock taken by this process until the run ends (execute), so that a
    run whose process dies can be told apart from one going on. The runs such a death left behind
    are marked interrupted first."""
    with suppress(StoreError):  # a busy or full store: marked the next time
        mark_interrupted(store.with_timeout(HOUSEKEEPING_TRY))
    spec = the_plan.spec
    # 48 random bits: a thousand array workers starting in one second share an id with a chance of 2e-9
    run_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:12]
    # Machine, pid and process start time: what judged runs before lock files, kept for the record.
    process = {"host": socket.gethostname(), "process_start": _process_start(os.getpid())}
    row = [
        run_id,
        "planned",
        spec.model,
        spec.base_url,
        json.dumps(spec.params),
        json.dumps(asdict(spec) | process),
        the_plan.n_probes,
        the_plan.usd,
        os.getpid(),
    ]

    def attempt(quick: Store) -> None:
        with quick.writing() as con:
            if spec.kind != GIVES_WAY:
                con.execute(sql.CANCEL_KIND, [GIVES_WAY])  # the background fill stops for this run
            con.execute(sql.INSERT_RUN, row)

    _hold_run_lock(store, run_id)  # before the run is seen: never a recorded run without its lock
    try:
        _Patience(store, run_id, on_busy).attempt(attempt)
    except BaseException:
        _release_run_lock(store, run_id, ended=True)  # there is no run
        raise
    return run_id


def execute(
    store: Store,
    run_id: str,
    the_plan: Plan,
    provider: Provider | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    grade: Grade | None = None,
    on_busy: OnBusy | None = None,
) -> Progress:
    """Send the plan's jobs, writing each transcript as it arrives. Ends with the run's status
    in the store: done, failed (stopped by an error no retry fixes) or cancelled, and lets go of the
    run's lock (create_run). With `grade`, the run's answers are graded every GRADE_SECONDS as they
    arrive, and once at the end, so that charts fill in while it runs. While the store is busy the
    run starts no new job and its writes wait and try again (`on_busy` is told the seconds waited
    each time); once it has been busy BUSY_PATIENCE seconds the run stops and raises StoreBusy."""
    patience = _Patience(store, run_id, on_busy)
    progress = Progress(total=the_plan.n_probes, cached=the_plan.n_cached)
    writer = Writer(store, run_id, progress, patience)
    ended = False  # the run's end is written
    try:
        _execute(store, run_id, the_plan, provider, on_progress, grade, writer)
        ended = True
        return progress
    except Exception as e:
        ended = isinstance(e, RunStopped)  # written as it stopped
        if not ended and patience.gave_up is None:
            # One try. If it fails too, the run stays "running" and, its lock let go, is marked
            # interrupted by the next listing.
            with suppress(StoreError):
                writer.last("failed", f"{type(e).__name__}: {e}")
                ended = True
        raise
    finally:
        _release_run_lock(store, run_id, ended)


def _execute(
    store: Store,
    run_id: str,
    the_plan: Plan,
    provider: Provider | None,
    on_progress: Callable[[Progress], None] | None,
    grade: Grade | None,
    writer: Writer,
) -> None:
    spec, progress, patience = the_plan.spec, writer.progress, writer.patience
    writer.finish("running", None)
    stop = threading.Event()
    status, message = "done", None
    if writer.cancel_requested:  # cancelled before it began (a fill step giving way): nothing is sent
        stop.set()
        status, message = "cancelled", "cancelled by the user"
    try:
        # An all-cached run sends nothing, so it needs no provider (nor a key, nor a server).
        if provider is None and the_plan.jobs and not stop.is_set():
            provider = make_provider(spec.model, spec.base_url, spec.timeout, server=spec.server)
    except (ProviderError, ValueError) as e:  # no key, or a malformed model spec
        writer.finish("failed", f"{spec.model}: {e}")
        raise RunStopped(f"{spec.model}: {e}") from e

    def run_job(job: Job, sent: Future) -> bool:
        """The job's requests (an "are you sure?" conversation: each turn after the one before), each
        reply written as it arrives; `sent` is resolved once the last request is answered, so that the
        next job's request goes out while this one writes. False when a request failed after its
        retries (written to errors here: the loop that starts jobs must not wait for a busy store)."""
        try:
            if stop.is_set():
                return False
            turn, messages, key, parent = job.turn, list(job.messages), job.key, job.parent
            while True:
                try:
                    reply = _send(provider, messages, spec)
                except RunStopped:
                    raise
                except ProviderError as e:
                    sent.set_result(None)
                    writer.error(job, spec.model, e.kind, str(e))
                    return False
                following = (
                    next_turn(turn, messages, reply.text, job.letters, spec.challenges)
                    if job.challenge
                    else None
                )
                if following is None:
                    sent.set_result(None)
                writer.transcript(transcript(key, job, run_id, spec, turn, parent, messages, reply))
                if following is None:
                    return True
                if stop.is_set():  # a cancel waits for no further turn; a later run sends what is missing
                    return False
                parent, (turn, messages) = key, following
                key = transcript_key(spec.model, spec.base_url, messages, spec.params, job.sample)
        finally:
            if not sent.done():
                sent.set_result(None)

    last_check = last_grade = time.monotonic()

    def cancelled(quiet: bool) -> bool:
        """Whether the user asked to cancel: as the last write read it, or, when nothing has been
        written for a while (slow requests, a busy store), as the store says."""
        nonlocal last_check
        if writer.cancel_requested:
            return True
        if not quiet or time.monotonic() - last_check <= CANCEL_CHECK_SECONDS:
            return False
        last_check = time.monotonic()
        try:
            return bool(_quick(store).scalar(sql.CANCEL_REQUESTED, [run_id]))
        except StoreBusy:
            return False  # asked again soon, or read with the next write

    if spec.batch and the_plan.jobs and not stop.is_set():
        from lib.run import batch_runs  # built on this module: imported when a batch is sent

        try:
            status, message = batch_runs.send(store, run_id, the_plan, provider, writer, on_progress, grade)
        except RunStopped as e:  # a vendor refusing a batch stops the run as a refused request does
            status, message = "failed", str(e)
    concurrency = max(1, spec.concurrency)
    with ThreadPoolExecutor(max_workers=2 * concurrency) as pool:
        pending: dict[Future, Job] = {}
        sending: set[Future] = set()
        jobs = iter([] if spec.batch else the_plan.jobs)  # a batch run sent them above
        # Only `concurrency` requests in flight, and one more job than that begun and not yet written:
        # a cancel, a fatal error or a busy store leaves little to wait for, or to hold in memory.
        # While a write waits for a busy store no job starts.
        try:
            while True:
                while (
                    not stop.is_set()
                    and not patience.busy.is_set()
                    and len(sending) < concurrency
                    and len(pending) <= concurrency
                ):
                    job = next(jobs, None)
                    if job is None:
                        break
                    sent: Future = Future()
                    sending.add(sent)
                    pending[pool.submit(run_job, job, sent)] = job
                if not pending:
                    break
                done, _ = wait(
                    [*pending, *sending], timeout=CANCEL_CHECK_SECONDS, return_when=FIRST_COMPLETED
                )
                sending -= done
                for future in done & pending.keys():
                    del pending[future]
                    error = future.exception()
                    if error is None:
                        progress.done += future.result()
                    elif isinstance(error, RunStopped):
                        stop.set()
                        status, message = "failed", str(error)
                    else:
                        stop.set()
                        status, message = "failed", f"{type(error).__name__}: {error}"
                if on_progress is not None:
                    on_progress(progress)
                if patience.gave_up is not None:
                    stop.set()  # what is in flight ends; its writes fail at once
                if not stop.is_set() and cancelled(quiet=not done):
                    stop.set()
                    status, message = "cancelled", "cancelled by the user"
                busy = patience.busy.is_set()
                if writer.due() and not busy:  # replies held while no new one came to write them
                    pool.submit(writer.flush)
                if grade is not None and not busy and time.monotonic() - last_grade > GRADE_SECONDS:
                    last_grade = time.monotonic()
                    with suppress(StoreBusy):  # graded the next time, or at the end
                        grade(_quick(store), run_id)
        except BaseException:  # Ctrl-C: the jobs begun stop at their next request or turn
            stop.set()
            raise
    if patience.gave_up is not None:
        raise StoreBusy(patience.gave_up)
    if grade is not None:
        writer.flush()  # the replies held last are graded too
        patience.attempt(lambda quick: grade(quick, run_id))
    if status == "done" and progress.failed:
        message = f"{progress.failed} probe(s) failed after retries; run again to retry them"
    writer.finish(status, message)


# -- entry points -------------------------------------------------------------------------------


def run(
    store: Store, spec: RunSpec, on_progress: Callable[[Progress], None] | None = None
) -> tuple[str, Progress]:
    """Plan, record and execute a run in this thread."""
    the_plan = plan(store, spec)
    run_id = create_run(store, the_plan)
    return run_id, execute(store, run_id, the_plan, on_progress=on_progress)


_background: dict[str, threading.Thread] = {}


def start_background(store: Store, spec: RunSpec, grade: Grade | None) -> str:
    """Start a run in a worker thread of this process and return its id at once. The thread
    outlives the Streamlit script run that started it, so a click elsewhere does not stop it.
    With `grade` (say lib.measure.grading.grade_run), its answers are graded as they arrive; None
    (said, not left out) grades nothing."""
    the_plan = plan(store, spec)
    run_id = create_run(store, the_plan)

    def work() -> None:
        try:
            execute(store, run_id, the_plan, grade=grade)
        except Exception:  # a background thread has no caller to raise to
            pass  # execute wrote the run's status and message, or its lock let go marks it interrupted
        finally:
            _release_run_lock(store, run_id, ended=False)  # whatever ended the thread (execute let go)

    thread = threading.Thread(target=work, name=f"run-{run_id}", daemon=True)
    _background[run_id] = thread
    thread.start()
    return run_id


def cancel(store: Store, run_id: str) -> None:
    with store.writing() as con:
        con.execute(sql.REQUEST_CANCEL, [run_id])


# store file -> when this process last looked for runs of dead processes in it (list_runs)
_housekept: dict[Path, float] = {}


def list_runs(store: Store, limit: int = 20) -> pd.DataFrame:
    """Recent runs, those whose process died marked interrupted first (mark_interrupted, at most every
    HOUSEKEEPING_SECONDS, and only when the store is free at once: a busy or full store leaves them
    for the next time, and the listing is read all the same). The message of a run of this process
    waiting for a busy store says so, with the seconds waited."""
    now = time.monotonic()
    if now - _housekept.get(store.key, -HOUSEKEEPING_SECONDS) >= HOUSEKEEPING_SECONDS:
        _housekept[store.key] = now
        with suppress(StoreError):
            mark_interrupted(store.with_timeout(HOUSEKEEPING_TRY))
    runs = store.frame(sql.LIST_RUNS, [limit])
    for run_id in runs["run_id"]:
        waited = store_wait(run_id)
        if waited is not None:
            runs.loc[runs["run_id"] == run_id, "message"] = f"store busy, waiting… {waited:.0f} s"
    return runs


def mark_interrupted(store: Store) -> list[str]:
    """Mark as interrupted (with a message) each run "planned" or "running" whose process has ended
    (killed, or the machine restarted), and remove the lock files of runs that are over. Returns the
    ids marked. Which runs are over is read, and tested on their lock files (see above); the store is
    written only when there is one to mark. A run stored before lock files is judged by its process:
    one of another machine is left alone, its process cannot be seen from here. Running it again
    sends only what is missing."""
    if store.read_only:  # nothing is written to a read-only store or beside it, lock files included
        return []
    host = socket.gethostname()
    open_runs = store.query(sql.OPEN_RUNS)
    taken: dict[str, int] = {}  # run id -> its lock, taken: the run's process is gone
    try:
        gone = []
        for run_id, pid, run_host, started in open_runs:
            path = _run_lock(store, run_id)
            if path is not None and path.exists():
                fd = _take_free_lock(path)
                if fd is not None:
                    taken[run_id] = fd
                    gone.append((run_id, pid))
            elif run_host in (None, host) and not _alive(pid, started):
                gone.append((run_id, pid))
        if gone:
            with store.writing() as con:
                for run_id, pid in gone:
                    message = (
                        f"interrupted: its process ({pid}) ended before it did; "
                        "run it again to send only what is missing"
                    )
                    con.execute(sql.MARK_INTERRUPTED, [message, run_id])
        # Marked, or over already (a process that died between its last write and removing its
        # lock file): the lock files go.
        still_open = {run_id for run_id, *_ in open_runs} - {run_id for run_id, _ in gone}
        for run_id, path in _run_locks_of(store).items():
            if run_id not in still_open and run_id not in taken:
                fd = _take_free_lock(path)
                if fd is not None:
                    taken[run_id] = fd
        for run_id, fd in taken.items():
            path = _run_lock(store, run_id)
            with suppress(OSError):
                if path is not None and same_file(fd, path):
                    path.unlink()
    finally:
        for fd in taken.values():
            os.close(fd)
    return [run_id for run_id, _ in gone]


def _process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot, from /proc), to tell it from a later process
    given the same pid (a restarted container's processes get the same pids); None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]  # field 22; the name before ")" may hold spaces


def _alive(pid: Any, started: str | None = None) -> bool:
    """Whether process `pid` of this machine is running and, when `started` is known, is the one that
    started then."""
    if pid is None or pd.isna(pid):
        return False
    try:
        os.kill(int(pid), 0)
    except PermissionError:  # it runs, as another user
        pass
    except (ProcessLookupError, ValueError, OverflowError):
        return False
    return started is None or _process_start(int(pid)) in (None, started)
