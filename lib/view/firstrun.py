"""The first run: an empty store is filled from the built-in sets by the bundled model, so that a
fresh dashboard already shows real transcripts, offline.

The seed is one background run, small enough to finish in about three minutes on two cores: six
items of each built-in set under every framing (114 probes), "are you sure?" challenged three times
(150 requests at most), short replies, temperature 0. Its progress is the run's row in the store,
which the Overview shows while it fills. The background fill (lib.view.fill) takes over from it.
"""

from __future__ import annotations

from lib.measure import grading
from lib.probes import probesets
from lib.run import runner
from lib.store import Store, sql

SEED_SETS = (
    "builtin/facts-answer",
    "builtin/arithmetic-are-you-sure",
    "builtin/wei-arithmetic",
    "builtin/feedback",
    "builtin/pressure-ladder",  # the Pressure page's ladder
)
SEED = runner.RunSpec(
    model="bundled:smollm2",
    set_ids=SEED_SETS,
    limit=6,
    max_tokens=48,
    concurrency=2,
    challenges=3,  # "are you sure?" three times: the Pressure page's flips over many turns
    kind="seed",
)


def needs_seed(store: Store) -> bool:
    """True when the store has no transcript and no run: a fresh store."""
    return store.scalar(sql.COUNT["transcripts"]) == 0 and store.scalar(sql.COUNT["runs"]) == 0


def ingest_builtins(store: Store, set_ids: tuple[str, ...] = SEED_SETS) -> None:
    for set_id in set_ids:
        probe_set = probesets.get(set_id)
        store.ingest(probe_set, probe_set.load())


def start_seed(store: Store) -> str:
    """Ingest the built-in sets and start the seed run in a worker thread; returns its run id.
    Its answers are graded as they arrive, so the charts fill in while it runs."""
    ingest_builtins(store)
    return runner.start_background(store, SEED, grading.grade_run)
