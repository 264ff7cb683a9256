"""A store a speaker can carry: `python -m lib demo --out FILE` writes a new store holding the first-run
seed's sets answered by the bundled model, offline, at the seed's settings (temperature 0, short
replies), with its run record and grades. The same command gives the same replies: temperature 0, the
items drawn by the sample seed, and the bundled model answering one request at a time.

Open it read-only on any machine: SYCOSCOPE_DB=FILE SYCOSCOPE_READ_ONLY=1 streamlit run app.py
(lib.store.database: nothing is written to it or beside it, and the dashboard starts no run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lib.measure import grading
from lib.run import runner
from lib.store import Store, is_lake
from lib.view import firstrun

KIND = "demo"  # RunSpec.kind of the demo's run


def spec(items: int, seed: int = 0, base: runner.RunSpec = firstrun.SEED) -> runner.RunSpec:
    """The demo's run: the seed's (`base`), with `items` items of each set drawn by sample seed `seed`."""
    if items < 1:
        raise ValueError(f"--items {items}: needs at least 1 item of each set")
    # One request at a time: the server's prompt cache makes a reply depend on the one before it.
    return replace(base, limit=items, seed=seed, kind=KIND, concurrency=1)


def make(
    out: Path,
    items: int,
    seed: int = 0,
    on_progress: Callable[[runner.Progress], None] | None = None,
    base: runner.RunSpec = firstrun.SEED,
) -> tuple[Store, str]:
    """Write a new store at `out` (refused when something is there) with the sets of `base` (the
    seed's), send the demo's run and grade it; the store and the run's id."""
    if is_lake(str(out)):
        raise ValueError(f"--out {out}: the demo writes a store file, not a DuckLake catalog")
    if out.exists() or out.is_symlink():
        raise ValueError(f"--out {out}: there is something there already; the demo writes a new store only")
    the_spec = spec(items, seed, base)
    store = Store(out, read_only=False)
    firstrun.ingest_builtins(store, the_spec.set_ids)
    the_plan = runner.plan(store, the_spec)
    run_id = runner.create_run(store, the_plan)
    runner.execute(store, run_id, the_plan, on_progress=on_progress, grade=grading.grade_run)
    return store, run_id
