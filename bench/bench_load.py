"""Many sessions at once while the store is written: the real dashboard (`streamlit run app.py`) on a
copy of a synthetic store, while a bundled-model run and a command-line import write to it.

    python bench/bench_load.py data/bench/store-1m.duckdb data/bench/store-100k.duckdb
    python bench/run_all.py --only load

The sessions: `sessions` speak Streamlit's websocket protocol as its front end does (a session per
page, the page's fragments rerun on their timers while it stays open), and `chromium` more are
contexts of one headless Debian Chromium driven through Playwright's asyncio API. Not 25 Chromium
contexts: on 2 cores the browsers would measure themselves (8 contexts opening the Overview of the
1M store at once took 64 CPU-seconds of Chromium against 12 of the server). A websocket session's
page counts as rendered when its first whole run has ended with the page's main element among its
elements; a Chromium page as in bench_browser.py (title, main element, charts drawn, no run going on).

Each session opens the Overview, the filtered Transcripts, one side by side and Compare, in that
order, `rounds` times. First one websocket and the Chromium sessions alone, on a quiet store
("alone"); then all sessions at once, starting together, while `python -m lib run --model
bundled:smollm2` writes transcripts (started first; the sessions start once it has written one) and
`python -m lib import` stores a generated JSON-lines file a few seconds in ("under load"). The run is
cancelled when the sessions are done (the Run page's Cancel: the request in flight finishes) and the
import is waited for.

Reported: per page the median and p95 alone and under load and the ratio of the p95s; errors (pages
that showed an exception or error alert or did not render in time, tracebacks in the server's log, a
run that failed); transcripts lost or duplicated (the store's count against what the run says it
wrote plus the imported lines; repeated (model, probe, parameters, sample, turn, parent)); the
whole-page reruns the server made by itself while pages stayed open; and the CPU each part took over
the load phase, in cores (read from /proc): the browsers (Chromium and the Playwright driver), the
websocket clients, the dashboard's server, the writers, and everything else on the machine (other
work: interference). The server's and the writers' logs are kept in bench/results/load-<size>-logs/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import websockets  # noqa: E402
from streamlit.proto.Alert_pb2 import Alert  # noqa: E402
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402

from bench.bench_browser import _pages  # noqa: E402
from bench.timing import RESULTS, machine, p95, save  # noqa: E402
from lib.paths import REPO  # noqa: E402
from lib.run import runner  # noqa: E402
from lib.store import Store  # noqa: E402
from tests.browser import chromium_async, dashboard, rendered_async  # noqa: E402

PAGES = ("overview", "transcripts (filtered)", "side by side (one item)", "compare")
RUN_SET = "builtin/facts-answer"
RUN_MODEL = "bundled:smollm2"
IMPORT_MODEL = "import:load-test"
IMPORT_SETS = ("builtin/facts-answer", "builtin/feedback")  # one-turn sets: one line per probe
PAGE_TIMEOUT_MS = 240_000
WRITER_TIMEOUT_S = 600


@dataclass
class Visit:
    client: str  # "websocket" or "chromium"
    session: int
    round: int
    page: str
    ms: float | None  # None: not rendered
    problems: list[str] = field(default_factory=list)  # error alerts, exceptions, a timeout
    app_reruns: int = 0  # whole-page reruns the server made while the page stayed open (websocket)


# -- sessions as Streamlit's front end speaks to the server ---------------------------------------
# What shows that a page is there: the test id in the browser, the element (or block) in the protocol.
_MARKERS = {"stPlotlyChart": "plotly_chart", "stDataFrame": "dataframe", "stChatMessage": "chat_message"}


def _rerun(page_name: str, query: str, page_hash: str = "", fragment_id: str = "") -> bytes:
    """The message the front end sends to run a page (or, with fragment_id, one fragment on its timer)."""
    msg = BackMsg()
    state = msg.rerun_script
    state.page_name, state.query_string, state.page_script_hash = page_name, query, page_hash
    if fragment_id:
        state.fragment_id, state.is_auto_rerun = fragment_id, True
    return msg.SerializeToString()


async def ws_visit(base: str, where: str, marker: str, dwell: float, timeout: float) -> Visit:
    """Open one page as a browser tab would, over Streamlit's websocket (a session of its own), and
    keep it open `dwell` seconds after its first run, running its fragments on their timers as the
    front end does. ms: until the first whole run of the page has finished, with `marker` among its
    elements. Counts the whole-page reruns the server makes by itself while the page stays open."""
    page_name, _, query = where.lstrip("/").partition("?")
    url = base.replace("http://", "ws://") + "/_stcore/stream"
    visit = Visit("websocket", 0, 0, "", None)
    seen: set[str] = set()
    timers: dict[str, list[float]] = {}  # fragment id -> [interval, next due]
    page_hash, until = "", None
    last: deque[str] = deque(maxlen=12)  # what the server sent last, for a page that never renders
    start = time.perf_counter()
    deadline = start + timeout
    async with websockets.connect(url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout) as ws:
        await ws.send(_rerun(page_name, query))
        while True:
            now = time.perf_counter()
            for fragment_id, timer in timers.items():
                if now >= timer[1]:
                    await ws.send(_rerun(page_name, query, page_hash, fragment_id))
                    timer[1] = now + timer[0]
            stop = until if until is not None else deadline
            if now >= stop:
                break
            wait = min([stop] + [t[1] for t in timers.values()]) - now
            try:
                data = await asyncio.wait_for(ws.recv(), timeout=max(0.01, wait))
            except TimeoutError:
                continue
            msg = ForwardMsg()
            msg.ParseFromString(data)
            kind = msg.WhichOneof("type")
            status = f" {msg.script_finished}" if kind == "script_finished" else ""
            last.append(f"{time.perf_counter() - start:.1f} s {kind}{status}")
            if kind == "new_session":
                page_hash = msg.new_session.page_script_hash
            elif kind == "auto_rerun":
                timers[msg.auto_rerun.fragment_id] = [msg.auto_rerun.interval, now + msg.auto_rerun.interval]
            elif kind == "delta":
                _read_delta(msg, seen, visit.problems)
            elif kind == "script_finished" and msg.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                if visit.ms is None:
                    visit.ms = (time.perf_counter() - start) * 1000
                    until = time.perf_counter() + dwell
            elif kind == "page_config_changed" and visit.ms is not None:
                # app.py sets the page config on every whole run, a fragment's run does not: a whole
                # run begins (whether it ends or another rerun cuts it short)
                visit.app_reruns += 1
    if visit.ms is None:
        visit.problems.append(f"not rendered in {timeout:.0f} s; the server sent last: {', '.join(last)}")
    elif _MARKERS[marker] not in seen:
        visit.problems.append(f"rendered without its {_MARKERS[marker]}")
    return visit


def _read_delta(msg: ForwardMsg, seen: set[str], problems: list[str]) -> None:
    delta = msg.delta
    if delta.WhichOneof("type") == "new_element":
        element = delta.new_element
        kind = element.WhichOneof("type")
        seen.add(kind)
        if kind == "exception":
            problems.append(f"exception: {element.exception.type}: {element.exception.message[:300]}")
        elif kind == "alert" and element.alert.format == Alert.ERROR:
            problems.append(f"error: {element.alert.body[:300]}")
    elif delta.WhichOneof("type") == "add_block":
        seen.add(delta.add_block.WhichOneof("type") or "")


async def _ws_session(base: str, pages: dict, index: int, rounds: int, dwell: float) -> list[Visit]:
    visits = []
    for r in range(rounds):
        for name in PAGES:
            where, _, marker = pages[name]
            try:
                visit = await ws_visit(base, where, marker, dwell, PAGE_TIMEOUT_MS / 1000)
            except (
                Exception
            ) as e:  # a refused or dropped connection: an error of the server, not of the bench
                visit = Visit("websocket", 0, 0, "", None, [f"{type(e).__name__}: {str(e)[:300]}"])
            visit.session, visit.round, visit.page = index, r, name
            visits.append(visit)
    return visits


# -- sessions in Chromium -------------------------------------------------------------------------
async def _browser_session(browser: Any, base: str, pages: dict, index: int, rounds: int) -> list[Visit]:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    visits = []
    try:
        for r in range(rounds):
            for name in PAGES:
                where, title, marker = pages[name]
                start = time.perf_counter()
                try:
                    found = await rendered_async(page, base + where, title, marker, PAGE_TIMEOUT_MS)
                    visits.append(
                        Visit("chromium", index, r, name, (time.perf_counter() - start) * 1000, found)
                    )
                except Exception as e:  # a timeout or a crashed page: an error of the run, not of the bench
                    visits.append(
                        Visit("chromium", index, r, name, None, [f"{type(e).__name__}: {str(e)[:300]}"])
                    )
    finally:
        await context.close()
    return visits


async def _all(base: str, pages: dict, plan: Load, started: threading.Event | None) -> list[Visit]:
    async with chromium_async() as browser:
        if started is not None:
            started.set()
        done = await asyncio.gather(
            *(_ws_session(base, pages, i, plan.rounds, plan.dwell) for i in range(plan.websocket)),
            *(_browser_session(browser, base, pages, i, plan.rounds) for i in range(plan.chromium)),
        )
    return [v for visits in done for v in visits]


@dataclass(frozen=True)
class Load:
    websocket: int  # sessions speaking Streamlit's protocol, as the front end does
    chromium: int  # sessions in Chromium contexts (one browser)
    rounds: int  # times each session opens PAGES
    dwell: float = 0.0  # seconds a websocket session keeps each page open, its fragments running


def sessions(base: str, pages: dict, plan: Load, started: threading.Event | None = None) -> list[Visit]:
    """The sessions of `plan` at once, all starting together; `started` is set once the browser is up."""
    return asyncio.run(_all(base, pages, plan, started))


# -- CPU ------------------------------------------------------------------------------------------
_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, CPU seconds so far) of every process."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK)
    return found


def _busy() -> float:
    """CPU seconds the whole machine has spent busy (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK  # less idle and iowait


class CpuMeter:
    """CPU seconds per group of processes over a stretch of time: each group is the process trees of
    its root pids; 'browsers' is every other descendant of this process and the process itself (the
    load generator); 'other' is the rest of the machine. Sampled every half second, so that processes
    that end in between (Chromium's renderers, the run) keep what they used until the last sample."""

    def __init__(self) -> None:
        self.roots: dict[str, set[int]] = {}
        self.used: dict[int, float] = {}
        self.group: dict[int, str] = {}
        self.stop = threading.Event()

    def add(self, name: str, pid: int) -> None:
        self.roots.setdefault(name, set()).add(pid)
        self.group.pop(pid, None)  # seen before it was named: grouped again at the next sample

    def _sample(self) -> None:
        procs = _processes()
        me = os.getpid()
        for pid, (_, cpu) in procs.items():
            if pid not in self.group:
                self.group[pid] = self._group_of(pid, procs, me)
                self.start.setdefault(pid, cpu if pid in self.seen_before else 0.0)
            self.used[pid] = cpu - self.start[pid]

    def _group_of(self, pid: int, procs: dict, me: int) -> str:
        at = pid
        while at > 1 and at in procs:
            for name, roots in self.roots.items():
                if at in roots:
                    return name
            if at == me:
                return "clients" if pid == me else "browsers"
            at = procs[at][0]
        return "other"

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            self._sample()

    @contextmanager
    def measuring(self) -> Iterator[dict[str, float]]:
        """Yields a dict filled at the end: CPU seconds per group, 'wall' seconds and 'busy', the
        machine's busy CPU seconds."""
        report: dict[str, float] = {}
        self.seen_before = set(_processes())
        self.start: dict[int, float] = {}
        self._sample()
        busy, wall = _busy(), time.monotonic()
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield report
        finally:
            self.stop.set()
            thread.join()
            self._sample()
            for pid, cpu in self.used.items():
                name = self.group[pid]
                report[name] = report.get(name, 0.0) + cpu
            report["wall"] = time.monotonic() - wall
            report["busy"] = _busy() - busy
            # 'other' from the machine's total: processes of other work that came and went between
            # samples count there too
            ours = sum(v for k, v in report.items() if k not in ("other", "wall", "busy"))
            report["other"] = max(0.0, report["busy"] - ours)


# -- writers --------------------------------------------------------------------------------------
def import_file(store: Store, path: Path, n: int) -> int:
    """A JSON-lines file of `n` replies of IMPORT_MODEL to distinct one-turn probes of the store."""
    rows = store.query(
        "SELECT item_id, framing_id FROM probes WHERE set_id IN (SELECT unnest(?)) ORDER BY probe_id LIMIT ?",
        [list(IMPORT_SETS), n],
    )
    with path.open("w", encoding="utf-8") as out:
        for item_id, framing_id in rows:
            line = {
                "item_id": item_id,
                "framing": framing_id,
                "model": IMPORT_MODEL,
                "response": "I think so.",
            }
            out.write(json.dumps(line) + "\n")
    return len(rows)


def lib_env(db: Path) -> dict[str, str]:
    """The environment of a `python -m lib` command on the store at `db`."""
    env = {**os.environ, "SYCOSCOPE_DB": str(db)}
    env.pop("SYCOSCOPE_BUNDLED_URL", None)  # a run starts its own bundled model
    return env


def _lib(args: list[str], db: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lib", *args],
        cwd=REPO,
        env=lib_env(db),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def start_run(
    db: Path, log: Path, limit: int, model: tuple[str, ...] = ("--model", RUN_MODEL)
) -> subprocess.Popen:
    """`python -m lib run`: the model (`model`: its arguments) answering `limit` items of RUN_SET, one
    at a time, in short replies (what is tested is the store and the pages, not the model)."""
    limits = ["--limit", str(limit), "--max-tokens", "32", "--concurrency", "1"]
    return _lib(["run", *model, "--set", RUN_SET, *limits], db, log)


def run_row(store: Store, model: str = RUN_MODEL) -> dict[str, Any] | None:
    rows = store.frame("SELECT * FROM runs WHERE model = ? ORDER BY created_at DESC LIMIT 1", [model])
    return None if rows.empty else rows.iloc[0].to_dict()


def wait_first_write(
    store: Store, run: subprocess.Popen, model: str = RUN_MODEL, timeout: float = WRITER_TIMEOUT_S
) -> None:
    """Wait until the run has stored a transcript (the bundled model's server starts first)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.poll() is not None:
            raise RuntimeError(f"the run ended ({run.returncode}) before it wrote anything")
        if store.scalar("SELECT count(*) FROM transcripts WHERE model = ?", [model]):
            return
        time.sleep(0.5)
    raise RuntimeError(f"the run wrote nothing in {timeout:.0f} s")


def finish_run(store: Store, run: subprocess.Popen, model: str = RUN_MODEL) -> int:
    """Cancel the run as the Run page does (the request in flight finishes) and wait for it."""
    row = run_row(store, model)
    if row is not None and run.poll() is None:
        runner.cancel(store, row["run_id"])
    return run.wait(WRITER_TIMEOUT_S)


def census(store: Store, model: str = RUN_MODEL) -> dict[str, Any]:
    """What the checks compare: all transcripts, the run's (of `model`) and the import's, and answers
    stored twice (the same request of the same model)."""
    row = run_row(store, model) or {}
    duplicated = store.scalar(
        """SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM transcripts
           GROUP BY model, coalesce(base_url, ''), probe_id, params::VARCHAR, sample, turn,
                    coalesce(parent_id, '') HAVING count(*) > 1)"""
    )
    return {
        "transcripts": int(store.scalar("SELECT count(*) FROM transcripts")),
        "distinct_ids": int(store.scalar("SELECT count(DISTINCT transcript_id) FROM transcripts")),
        "run_stored": int(
            store.scalar("SELECT count(*) FROM transcripts WHERE run_id = ?", [row.get("run_id")]) or 0
        ),
        "run_done": int(row.get("n_done", 0)),
        "run_failed": int(row.get("n_failed", 0)),
        "run_status": row.get("status", "none"),
        "imported": int(store.scalar("SELECT count(*) FROM transcripts WHERE model = ?", [IMPORT_MODEL])),
        "duplicated": int(duplicated),
    }


def server_tracebacks(log: Path) -> list[str]:
    text = log.read_text(errors="replace") if log.exists() else ""
    return [chunk[:400] for chunk in text.split("Traceback (most recent call last):")[1:]]


# -- one store ------------------------------------------------------------------------------------
def summary(visits: list[Visit], client: str) -> dict[str, dict[str, Any]]:
    """Per page: visits, how many failed, median and p95 of the rendered ones."""
    out = {}
    for name in PAGES:
        mine = [v for v in visits if v.page == name and v.client == client]
        times = [v.ms for v in mine if v.ms is not None]
        out[name] = {
            "visits": len(mine),
            "failed": sum(1 for v in mine if v.ms is None or v.problems),
            "median_ms": round(statistics.median(times), 1) if times else None,
            "p95_ms": round(p95(times), 1) if times else None,
        }
    return out


def copy_store(source: Path, folder: Path) -> Path:
    """A copy of the store (the load test writes to it), with its metric tables' cache."""
    target = folder / source.name
    shutil.copy2(source, target)
    tables = source.with_name(source.name + ".tables")
    if tables.is_dir():
        shutil.copytree(tables, target.with_name(target.name + ".tables"))
    return target


def _server_pid(base: str) -> int:
    """The pid of the process listening on base's port (the dashboard's server)."""
    port = int(base.rsplit(":", 1)[1])
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":  # listening
                inodes.add(f"socket:[{parts[9]}]")
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no process listens on port {port}")


def measure(
    source: Path, size: str, alone: Load, load: Load, run_limit: int, import_lines: int
) -> dict[str, Any]:
    """One store: warm-up, `alone`, then `load` with the run and the import writing."""
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        folder = Path(tmp)
        db = copy_store(source, folder)
        store = Store(db)
        pages = {name: spec for name, spec in _pages(store).items() if name in PAGES}
        lines = import_file(store, folder / "replies.jsonl", import_lines)
        log = folder / "streamlit.log"
        with dashboard(db, log) as base:
            print(f"  {size}: warming up (one session, untimed)", flush=True)
            sessions(base, pages, Load(1, 1, 1))
            print(f"  {size}: alone: {alone}", flush=True)
            quiet = sessions(base, pages, alone)
            before = census(store)
            loadavg_before = os.getloadavg()
            meter = CpuMeter()
            meter.add("server", _server_pid(base))
            run = start_run(db, folder / "run.log", run_limit)
            meter.add("writers", run.pid)
            print(f"  {size}: waiting for the run's first transcript", flush=True)
            wait_first_write(store, run)
            print(f"  {size}: under load: {load}, the run and an import writing", flush=True)
            started = threading.Event()
            importer: list[subprocess.Popen] = []

            def start_import() -> None:
                started.wait()
                time.sleep(3)
                importer.append(_lib(["import", str(folder / "replies.jsonl")], db, folder / "import.log"))
                meter.add("writers", importer[0].pid)

            threading.Thread(target=start_import, daemon=True).start()
            with meter.measuring() as cpu:
                loaded = sessions(base, pages, load, started)
            loadavg_after = os.getloadavg()
            run_code = finish_run(store, run)
            import_code = importer[0].wait(WRITER_TIMEOUT_S) if importer else None
            after = census(store)
            tracebacks = server_tracebacks(log)
            logs = {
                name: (folder / f"{name}.log").read_text(errors="replace")[-600:]
                for name in ("run", "import")
            }
            kept = RESULTS / f"load-{size}-logs"  # the server's and the writers' logs, to read after
            shutil.rmtree(kept, ignore_errors=True)
            kept.mkdir(parents=True)
            for name in ("streamlit", "run", "import"):
                shutil.copy(folder / f"{name}.log", kept)
    problems = [f"{v.client} {v.page} (session {v.session}): {p}" for v in quiet + loaded for p in v.problems]
    if after["run_status"] not in ("done", "cancelled") or after["run_failed"]:
        problems.append(
            f"the run ended {after['run_status']} with {after['run_failed']} failed requests (exit "
            f"{run_code}): {logs['run']}"
        )
    if import_code != 0:
        problems.append(f"the import exited with {import_code}: {logs['import']}")
    problems += [f"server traceback: {t}" for t in tracebacks]
    expected = before["transcripts"] + after["run_stored"] + lines
    wall = cpu.pop("wall")
    busy = cpu.pop("busy")
    return {
        "bench": "load",
        "size": size,
        "alone": asdict(alone),
        "load": asdict(load),
        "pages": {
            client: [
                {"page": name, "alone": a, "load": b, "p95_ratio": _ratio(b["p95_ms"], a["p95_ms"])}
                for (name, a), b in zip(
                    summary(quiet, client).items(), summary(loaded, client).values(), strict=True
                )
            ]
            for client in ("websocket", "chromium")
        },
        "app_reruns_per_minute_open": round(
            60
            * sum(v.app_reruns for v in loaded)
            / max(1e-9, load.dwell * sum(1 for v in loaded if v.ms and v.client == "websocket")),
            2,
        ),
        "errors": problems,
        "transcripts": {
            "before": before["transcripts"],
            "after": after["transcripts"],
            "expected": expected,
            "run_wrote": after["run_stored"],
            "run_says_done": after["run_done"],
            "run_status": after["run_status"],
            "imported": after["imported"],
            "import_lines": lines,
            "lost": max(0, expected - after["transcripts"])
            + max(0, after["run_done"] - after["run_stored"])
            + max(0, lines - after["imported"]),
            "duplicated": after["duplicated"] + after["transcripts"] - after["distinct_ids"],
        },
        "cpu_cores": {k: round(v / wall, 2) for k, v in cpu.items()}
        | {"machine_busy": round(busy / wall, 2)},
        "cores": os.cpu_count(),
        "load_seconds": round(wall, 1),
        "loadavg_before": [round(x, 2) for x in loadavg_before],
        "loadavg_after": [round(x, 2) for x in loadavg_after],
    }


def _ratio(loaded: float | None, alone: float | None) -> float | None:
    return round(loaded / alone, 2) if loaded and alone else None


# -- output ---------------------------------------------------------------------------------------
def _ms(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f}"


def markdown(results: list[dict[str, Any]], about: dict[str, Any]) -> str:
    header = (
        f"Measured on {about['cpu']}, {about['cores']} cores, {about['memory_gb']} GB, Python "
        f"{about['python']}, DuckDB {about['duckdb']}. Times in ms; p95 by nearest rank."
    )
    return header + "\n\n" + tables(results)


def tables(results: list[dict[str, Any]]) -> str:
    """One table per store, with its errors, transcripts and CPU."""
    lines = []
    for r in results:
        t, cpu, load = r["transcripts"], r["cpu_cores"], r["load"]
        lines += [
            f"**{r['size']} store: {load['websocket']} websocket sessions and {load['chromium']} Chromium "
            f"session(s) at once, {load['rounds']} rounds of the four pages, while a bundled-model run "
            f"and an import write** ({r['load_seconds']:.0f} s under load)",
            "",
            "| page | session | alone: median / p95 | under load: median / p95 | p95 ratio (goal < 3) "
            "| failed |",
            "|---|---|---|---|---|---|",
        ]
        for client in ("websocket", "chromium"):
            for p in r["pages"][client]:
                a, b = p["alone"], p["load"]
                if not b["visits"]:
                    continue
                ratio = "—" if p["p95_ratio"] is None else f"{p['p95_ratio']:.1f}x"
                lines.append(
                    f"| {p['page']} | {client} | {_ms(a['median_ms'])} / {_ms(a['p95_ms'])} | "
                    f"{_ms(b['median_ms'])} / {_ms(b['p95_ms'])} | {ratio} | {b['failed']} of {b['visits']} |"
                )
        errors = "; ".join(e[:200] for e in r["errors"][:3])
        lines += [
            "",
            f"- Errors: {len(r['errors'])}{': ' + errors if errors else ''}.",
            f"- Transcripts: {t['before']:,} before, {t['after']:,} after, {t['expected']:,} expected "
            f"({t['run_wrote']} written by the run, which counts {t['run_says_done']} done and ended "
            f"{t['run_status']}; {t['imported']:,} of {t['import_lines']:,} imported lines): lost "
            f"{t['lost']}, duplicated {t['duplicated']}.",
            "- Whole-page reruns while a page stays open and the run writes: "
            f"{r['app_reruns_per_minute_open']} per session-minute.",
            f"- CPU under load, in cores (of {r['cores']}): browsers (Chromium and the Playwright driver) "
            f"{cpu.get('browsers', 0):.2f}, websocket clients {cpu.get('clients', 0):.2f}, dashboard server "
            f"{cpu.get('server', 0):.2f}, writers (the run with its model server, the import) "
            f"{cpu.get('writers', 0):.2f}, other work on the machine {cpu.get('other', 0):.2f}; load average "
            f"{r['loadavg_before'][0]:.1f} before, {r['loadavg_after'][0]:.1f} after.",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", type=Path, nargs="+", help="stores (copied: the test writes to the copy)")
    parser.add_argument("--sessions", type=int, default=25, help="websocket sessions under load")
    parser.add_argument("--chromium", type=int, default=1, help="Chromium sessions, alone and under load")
    parser.add_argument("--rounds", type=int, default=2, help="times each session opens the four pages")
    parser.add_argument("--alone-rounds", type=int, default=5)
    parser.add_argument("--dwell", type=float, default=5.0, help="seconds a session keeps a page open")
    parser.add_argument("--run-limit", type=int, default=50, help="items of the run (cancelled at the end)")
    parser.add_argument("--import-lines", type=int, default=1000)
    parser.add_argument("--out", default="load", help="bench/results/<out>.json and .md")
    args = parser.parse_args(argv)
    alone = Load(1, args.chromium, args.alone_rounds)
    load = Load(args.sessions, args.chromium, args.rounds, args.dwell)
    results = []
    for path in args.paths:
        size = path.stem.removeprefix("store-")
        results.append(measure(path, size, alone, load, args.run_limit, args.import_lines))
        print(json.dumps(results[-1], indent=1, default=str), flush=True)
    about = machine()
    save(args.out, [r | {"machine": about} for r in results])
    table = markdown(results, about)
    (RESULTS / f"{args.out}.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
