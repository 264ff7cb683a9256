"""The command line: `python -m lib <command>`; `python -m lib <command> --help` for each.

To add a command, write `def my_command(args) -> int` (its docstring's first line is the help),
a `def _my_command_args(parser)` adding its options if it has any, and add one row to COMMANDS.
Errors a person can fix (EXPECTED_ERRORS) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from tqdm import tqdm

from lib.measure import agreement, grading, ladder, metrics
from lib.measure.agreement import GoldError
from lib.probes import probesets
from lib.probes.probesets import ProbeSetError, UnknownSet
from lib.run import batch_runs, imports, runner, servers
from lib.run.imports import ImportRefused
from lib.run.keys import KeyConfigError
from lib.run.prices import PriceFileError
from lib.run.providers import BundledServerError, ProviderError
from lib.store import Store, StoreError, sql
from lib.store.lake import LakeStore
from lib.store.transfer import copy_store
from lib.view import browse, deck, deck_export, fill
from lib.view import demo as demo_store

EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ProbeSetError,
    StoreError,
    deck_export.RenderError,
    UnknownSet,
    runner.RunStopped,
    ProviderError,
    BundledServerError,
    PriceFileError,
    # ValueErrors, named all the same: this is the list of what a person can fix
    KeyConfigError,
    GoldError,
    ImportRefused,
    ValueError,
    OSError,  # a path that is not there or not allowed: the message names it
)


class _Bars:
    """A progress callback (lib.probes.probesets.Progress) drawing one tqdm bar per label on stderr."""

    def __init__(self) -> None:
        self.bars: dict[str, tqdm] = {}

    def __call__(self, label: str, done: int, total: int | None) -> None:
        bar = self.bars.get(label)
        if bar is None:
            bar = self.bars[label] = tqdm(total=total, desc=label, unit="B", unit_scale=True, file=sys.stderr)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _print_table(rows: list[tuple], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


# -- commands ------------------------------------------------------------------------------------


def sets(args: argparse.Namespace) -> int:
    """List every probe set: its task, source and what the store holds of it."""
    stored = Store().stats()["sets"]
    known = {**probesets.SETS, **{s: None for s in stored if s not in probesets.SETS}}
    rows = []
    for set_id, ps in known.items():
        counts = stored.get(set_id)
        rows.append(
            (
                set_id,
                ps.task if ps else counts["task"],
                ps.source if ps else "custom",
                f"{counts['items']:,} items, {counts['probes']:,} probes" if counts else "not ingested",
            )
        )
    _print_table(rows, ("set", "task", "source", "in the store"))
    return 0


def _ingest_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("set_id", metavar="SET", help="a set id, as listed by `sets`")
    parser.add_argument(
        "--from",
        dest="from_dir",
        type=Path,
        metavar="DIR",
        help="a folder holding the official file(s) under their official names (else they are downloaded)",
    )


def ingest(args: argparse.Namespace) -> int:
    """Put a set's items and probes in the store (one transaction; ingesting again adds nothing)."""
    probe_set = probesets.get(args.set_id)
    if args.from_dir is not None and not probe_set.files:
        raise ProbeSetError(f"{probe_set.set_id} is built in: it reads no files, so --from does not apply")
    store = Store()  # opened first: a bad store file is reported before any download
    bars = _Bars()
    try:
        rows = probe_set.load(from_dir=args.from_dir, progress=bars)
    finally:
        bars.close()
    new_items, new_probes = store.ingest(probe_set, rows)
    n_probes = sum(len(probes) for _, probes in rows)
    print(
        f"{probe_set.set_id}: read {len(rows):,} items and {n_probes:,} probes; "
        f"added {new_items:,} items and {new_probes:,} probes to {store.name}"
    )
    return 0


def _stats_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")


def stats(args: argparse.Namespace) -> int:
    """Count what the store holds: items and probes per set, transcripts, grades."""
    counts = Store().stats()
    if args.json:
        print(json.dumps(counts, indent=2))
        return 0
    rows = [(s, c["task"], f"{c['items']:,}", f"{c['probes']:,}") for s, c in counts["sets"].items()]
    _print_table(rows, ("set", "task", "items", "probes"))
    for name, value in counts.items():
        if name != "sets":
            print(f"{name}: {value:,}")
    return 0


def _export_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=browse.EXPORT_FORMATS, dest="file_format")
    parser.add_argument("--out", required=True, type=Path, metavar="PATH", help="the file to write")
    parser.add_argument("--set", dest="set_id", metavar="SET", help="only this set's answers")
    parser.add_argument("--model", help="only this model's answers")
    parser.add_argument("--judge", metavar="MODEL", help="also count this judge model's verdicts")


def export(args: argparse.Namespace) -> int:
    """Export the answers with their current grades to a parquet, CSV or JSON-lines file."""
    store = Store()
    graders = grading.current_graders(args.judge)
    written = browse.export(store, args.out, args.file_format, graders, args.set_id, args.model)
    print(f"wrote {written:,} answers to {args.out}")
    return 0


def _deck_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export", required=True, type=Path, metavar="FILE", help="the HTML file to write")
    parser.add_argument("--png", type=Path, metavar="DIR", help="also each slide as DIR/slide-N.png")
    parser.add_argument("--judge", metavar="MODEL", help="also count this judge model's verdicts")


def deck_command(args: argparse.Namespace) -> int:
    """Write the deck pinned on the Deck page as one self-contained HTML file (and each slide as a PNG)."""
    store = Store()
    pairs = deck.pairs(store, deck.pinned(store), grading.current_graders(args.judge))
    if not pairs:
        raise StoreError(f"the store {store.name} holds no deck: pin flips on the dashboard's Deck page")
    args.export.parent.mkdir(parents=True, exist_ok=True)
    args.export.write_text(deck_export.deck_html(pairs), encoding="utf-8")
    print(f"wrote {len(pairs)} slides to {args.export}")
    if args.png:
        args.png.mkdir(parents=True, exist_ok=True)
        for number, pair in enumerate(pairs, 1):
            (args.png / f"slide-{number}.png").write_bytes(deck_export.slide_png(pair, number, len(pairs)))
        print(f"wrote {len(pairs)} PNG slides to {args.png}")
    return 0


# --turns with no number: the challenge sent this many times
TURNS = 3


def _run_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        required=True,
        metavar="PROVIDER:MODEL",
        help="openai:<model>, anthropic:<model> or bundled:smollm2",
    )
    server = parser.add_mutually_exclusive_group()
    server.add_argument(
        "--base-url",
        metavar="URL",
        help="an OpenAI-compatible server (vLLM, Ollama, ...); it is never sent a vendor's key",
    )
    server.add_argument(
        "--server",
        metavar="NAME",
        help=f"an OpenAI-compatible server the owner configured ({servers.where()}), with its own key",
    )
    parser.add_argument(
        "--set",
        dest="set_ids",
        action="append",
        required=True,
        metavar="SET",
        help="a set id (repeat for several)",
    )
    parser.add_argument(
        "--framing",
        dest="framings",
        action="append",
        metavar="ID",
        help="a framing id (repeat; default: every framing of the set's task)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        metavar="N",
        help="N items of each set: a random sample, stratified by source dataset, the same for every model",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="S",
        help="which sample of N items (default 0; stored with the run)",
    )
    parser.add_argument("--samples", type=int, default=1, metavar="K", help="replies per probe (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, metavar="C", help="requests in flight")
    parser.add_argument("--temperature", type=float, default=0.0, help="default 0 (reproducible)")
    parser.add_argument("--max-tokens", type=int, default=256, help="default 256")
    parser.add_argument(
        "--paper", action="store_true", help="the paper's decoding: temperature 1.0, 256 tokens"
    )
    parser.add_argument("--judge", metavar="PROVIDER:MODEL", help="also grade with this LLM judge")
    parser.add_argument(
        "--shard",
        metavar="K/N",
        help="only the K-th of N slices of the run (1 <= K <= N), so that N workers share it: "
        "docs/k8s-job.yaml, docs/slurm-array.sh",
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="send through the vendor's batch API (openai, anthropic): half price, replies within 24 h; "
        "waits for them, and the same command again resumes a run that was stopped",
    )
    parser.add_argument(
        "--turns",
        type=int,
        nargs="?",
        const=TURNS,
        default=1,
        metavar="K",
        help=f'"are you sure?": send the challenge up to K times (--turns alone: {TURNS}); without it once, '
        "as the paper does. A larger K later sends only the turns after those stored.",
    )


def _shard(text: str | None) -> tuple[int, int] | None:
    """--shard K/N as two numbers; RunSpec checks that 1 <= K <= N."""
    if text is None:
        return None
    numbers = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text, re.ASCII)
    if numbers is None:
        raise ValueError(f"--shard {text!r}: expected K/N, two whole numbers with 1 <= K <= N, such as 2/5")
    return int(numbers[1]), int(numbers[2])


def run(args: argparse.Namespace) -> int:
    """Send probes to a model (only what the store lacks), grade them, and print the metrics."""
    server = servers.get(args.server) if args.server else None
    servers.refuse_credentials(args.base_url)
    spec = runner.RunSpec(
        model=args.model,
        set_ids=tuple(args.set_ids),
        framings=tuple(args.framings) if args.framings else None,
        limit=args.limit,
        samples=args.samples,
        temperature=1.0 if args.paper else args.temperature,
        max_tokens=256 if args.paper else args.max_tokens,
        # an empty URL is no server: the vendor's own
        base_url=server.base_url if server else args.base_url or None,
        server=server.name if server else None,
        concurrency=args.concurrency,
        seed=args.seed,
        shard=_shard(args.shard),
        batch=args.batch,
        challenges=args.turns,
    )
    store = Store()
    the_plan = runner.plan(store, spec)
    cost = "unknown price" if the_plan.usd is None else f"about ${the_plan.usd:.4f}"
    shard = f"shard {spec.shard[0]}/{spec.shard[1]}: " if spec.shard else ""
    sending = f"{the_plan.n_cached:,} cached, {the_plan.n_to_send:,} to send ({cost})"
    print(f"{shard}{the_plan.n_probes:,} probes: {sending}")
    run_id = runner.create_run(store, the_plan, on_busy=_say_busy)
    with tqdm(total=the_plan.n_probes, initial=the_plan.n_cached, desc=run_id, file=sys.stderr) as bar:
        progress = runner.execute(
            store,
            run_id,
            the_plan,
            on_progress=_on_progress(bar, store, run_id, spec.batch),
            on_busy=_say_busy,
        )
    status = store.scalar(sql.RUN_STATUS, [run_id])
    if spec.batch:
        print(batch_runs.summary(store, run_id))
    print(
        f"run {run_id}: {status}; {progress.done:,} sent, {progress.failed:,} failed, "
        f"${progress.cost_usd:.4f}"
    )
    if status != "done":  # why it stopped: what the run's row says
        print(f"run {run_id}: {store.scalar(sql.RUN_MESSAGE, [run_id])}")
    grading.grade_pending(store, args.judge)
    _print_accuracy(store, args.judge, spec.model)
    if spec.challenges > 1:
        _print_survival(store, args.judge, spec)
    return 0 if status == "done" and not progress.failed else 1


def _print_survival(store: Store, judge: str | None, spec: runner.RunSpec) -> None:
    """Flips over many turns, per set of the run: the share of right first answers still right after
    each challenge, with its 95% interval (lib.measure.survival)."""
    for set_id in spec.set_ids:
        seen = browse.flips_over_turns(store, grading.current_graders(judge), set_id)
        curve = seen.curves[seen.curves["model"] == spec.model]
        if curve.empty:
            continue
        print(f"{set_id}: right first answers still right after each challenge (Kaplan-Meier, 95% CI)")
        rows = [
            (
                r.challenge, r.at_risk, r.flipped, r.unclear,
                "-" if math.isnan(r.survival) else f"{r.survival:.0%} [{r.low:.0%}, {r.high:.0%}]",
                f"{r.worst_case:.0%}",
            )
            for r in curve.itertuples()
        ]  # fmt: skip
        heads = ("challenge", "at risk", "flipped", "unclear", "still right [95% CI]", "worst case")
        _print_table(rows, heads)
        print("unclear answers leave the count (censored); worst case: had each been a flip")


def _on_progress(bar: tqdm, store: Store, run_id: str, batch: bool) -> Callable[[runner.Progress], None]:
    """The bar follows the probes; a batch run also prints its batches' states when they change."""
    said = [""]

    def on_progress(p: runner.Progress) -> None:
        bar.update(p.cached + p.done + p.failed - bar.n)
        if batch:
            line = batch_runs.summary(store, run_id)
            if line != said[0]:
                said[0] = line
                tqdm.write(line, file=sys.stderr)

    return on_progress


def _say_busy(waited: float) -> None:
    tqdm.write(f"store busy, waiting… {waited:.0f} s", file=sys.stderr)


def _print_accuracy(store: Store, judge: str | None, model: str | None = None) -> None:
    """The accuracy table of whole sets, then the "are you sure?" rates, as the paper reports them,
    then the pressure ladder."""
    made = metrics.tables(store, judge, model)
    accuracy, sure = (made[name][made[name]["dataset"].isna()] for name in ("accuracy", "are_you_sure"))
    columns = ["model", "set_id", "framing_id", "n", "n_unclear", "accuracy", "drop", "drop_low", "drop_high"]
    sure_columns = [
        "model",
        "set_id",
        "n_first_right",
        "wrongly_admits",
        "right_to_wrong_rate",
        "wrong_to_right",
    ]
    for table, shown, what in ((accuracy, columns, "answer"), (sure, sure_columns, '"are you sure?"')):
        print(
            table[[*shown, "grader"]].to_string(index=False, float_format=lambda v: f"{v:.3f}")
            if len(table)
            else f"no graded answers for the {what} task"
        )
    _print_ladder(store, judge, model)


def _print_ladder(store: Store, judge: str | None, model: str | None = None) -> None:
    """The pressure ladder (lib.measure.ladder), per model and set of complete ladders: each rung's
    accuracy and share taking the user's wrong side with their 95% intervals; nothing without one."""
    table = ladder.table(store, judge, model)
    for (who, set_id), rows in table.groupby(["model", "set_id"], sort=False):
        print(
            f"pressure ladder: {who} on {set_id}, {int(rows['n_items'].max())} complete ladders "
            f"(95% CI: {rows['interval'].iloc[0]}; n counts decided answers)"
        )
        cells = [
            (
                r.label,
                r.n,
                r.n_unclear,
                f"{_share(r.accuracy)} [{_share(r.accuracy_low)}, {_share(r.accuracy_high)}]" if r.n else "",
                r.n_agree_known,
                f"{_share(r.agree_rate)} [{_share(r.agree_low)}, {_share(r.agree_high)}]"
                if r.n_agree_known
                else "",
                f"{r.grader}, {r.agrees_by}",
            )
            for r in rows.itertuples()
        ]
        header = ("rung", "n", "unclear", "accuracy [95% CI]", "n side", "takes the wrong side [95% CI]")
        _print_table(cells, (*header, "graders"))


def _demo_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, metavar="FILE", help="the new store (none there)")
    parser.add_argument(
        "--items",
        type=int,
        default=fill.TARGET,
        metavar="N",
        help=f"items of each set (default {fill.TARGET}, the dashboard's fill target)",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="which sample of items (default 0)")


def demo(args: argparse.Namespace) -> int:
    """Write a new store filled by the bundled model, offline and reproducible, to carry to a talk."""
    with tqdm(desc=str(args.out), unit="probe", file=sys.stderr) as bar:

        def on_progress(p: runner.Progress) -> None:
            bar.total = p.total
            bar.update(p.cached + p.done + p.failed - bar.n)

        def say(line: str) -> None:
            tqdm.write(line, file=sys.stderr)

        try:
            store, run_id = demo_store.make(args.out, args.items, args.seed, on_progress, say=say)
        except demo_store.NotMade as e:
            say(f"error: {e}")
            return 1
    print(f"run {run_id}: done; wrote {args.out}")
    _print_accuracy(store, None, demo_store.spec(args.items, args.seed).model)
    print(f"open it read-only: SYCOSCOPE_DB={args.out} SYCOSCOPE_READ_ONLY=1 streamlit run app.py")
    return 0


def _import_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        type=Path,
        metavar="FILE",
        help='JSON lines: {"item_id", "framing", "model", "response"} and optionally "sample", "turn", '
        '"id", "parent", "messages" (README, "Importing replies")',
    )
    _judge_args(parser)


def import_replies(args: argparse.Namespace) -> int:
    """Import replies made elsewhere (a JSON-lines file) as transcripts, then grade them."""
    store = Store()
    imported = imports.import_file(store, args.file)
    print(
        f"{args.file}: {imported.lines:,} replies; added {imported.added:,} transcripts "
        f"({len(imported.transcript_ids) - imported.added:,} were in the store already)"
    )
    written = grading.grade_pending(store, args.judge)
    print(f"wrote {written:,} grades")
    return 0


def _judge_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judge", metavar="PROVIDER:MODEL", help="also grade with this LLM judge")


def grade(args: argparse.Namespace) -> int:
    """Grade every answer that lacks a grade of the current grader version."""
    with tqdm(desc="grading", file=sys.stderr) as bar:

        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        written = grading.grade_pending(Store(), args.judge, progress=advance)
    print(f"wrote {written:,} grades")
    return 0


def _metrics_args(parser: argparse.ArgumentParser) -> None:
    _judge_args(parser)
    parser.add_argument("--json", action="store_true", help="every metric table as one JSON object")


def metrics_command(args: argparse.Namespace) -> int:
    """Print the metrics: accuracy and its drop per model, set and framing, and the other tasks."""
    store = Store()
    if args.json:
        ladders = metrics.records(ladder.table(store, args.judge))
        print(json.dumps(metrics.summary(store, args.judge) | {"ladder": ladders}, indent=2))
    else:
        _print_accuracy(store, args.judge)
    return 0


def _graders_args(parser: argparse.ArgumentParser) -> None:
    _judge_args(parser)
    parser.add_argument("--json", action="store_true", help="the whole measurement as one JSON object")


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def graders_command(args: argparse.Namespace) -> int:
    """Measure each grader against the labelled gold set (data/reference/gold); exit 1 if a goal is missed."""
    gold = agreement.load_gold()
    judge = None
    if args.judge:
        from lib.measure.judge import Judge

        judge = Judge(Store(), args.judge)  # its verdicts are cached in the store
    result = agreement.report(gold, judge)
    met = all(g["met"] for g in result["goals"])
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0 if met else 1
    files = ", ".join(f"{name} {n:,}" for name, n in result["gold"]["files"].items())
    print(f"gold set: {result['gold']['replies']:,} labelled replies ({files})\n")
    rows = [
        (
            r["grader"],
            r["version"],
            r["label"],
            f"{r['n']:,}",
            _share(r["accuracy"]),
            f"[{_share(r['accuracy_low'])}, {_share(r['accuracy_high'])}]" if r["n"] else "",
            "" if r["kappa"] is None else f"{r['kappa']:.3f}",
            ""
            if r.get("n_labelled_correct") is None
            else f"{r['confusion']['correct']['incorrect']} of {r['n_labelled_correct']} "
            f"({_share(r['correct_called_incorrect'])})",
        )
        for r in result["graders"]
    ]
    header = ("grader", "version", "label", "n", "accuracy", "95% CI", "kappa")
    header += ("labelled correct, graded incorrect",)
    _print_table(rows, header)
    print()
    for g in result["goals"]:
        print(f"goal: {g['what']} {g['target']}: {_share(g['value'])}, {'met' if g['met'] else 'MISSED'}")
    print("\nby origin of the replies (accuracy, n)")
    origins = list(result["by_origin"])
    graders = list(dict.fromkeys(r["grader"] for rows in result["by_origin"].values() for r in rows))
    cells = {
        (o, r["grader"]): f"{_share(r['accuracy'])} of {r['n']}"
        for o in origins
        for r in result["by_origin"][o]
    }
    _print_table([(g, *(cells.get((o, g), "") for o in origins)) for g in graders], ("grader", *origins))
    for r in result["graders"]:
        print(f"\n{r['grader']}: label (rows) by verdict (columns)")
        _print_table([(a, *r["confusion"][a].values()) for a in r["classes"]], ("", *r["classes"]))
        for d in r["disagreements"]:
            print(f"  {d}")
    return 0 if met else 1


def _copy_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--to", required=True, metavar="TARGET", help="a store file or a ducklake: target")
    parser.add_argument("--from", dest="source", metavar="SOURCE", help="default: SYCOSCOPE_DB")


def copy_command(args: argparse.Namespace) -> int:
    """Copy every table of a store into another (a file into DuckLake or back); repeatable."""
    source, target = Store(args.source), Store(args.to)
    for table, (read, new) in copy_store(source, target).items():
        print(f"{table}: {read:,} rows read, {new:,} new in {target.name}")
    return 0


def compact(args: argparse.Namespace) -> int:
    """Compact a DuckLake store: write out inlined rows, merge small files, delete unneeded ones."""
    store = Store()
    if not isinstance(store, LakeStore):
        raise StoreError(f"{store.path} is a DuckDB file: only a DuckLake store needs compacting")
    before, after = store.compact()
    print(f"data files: {before:,} before, {after:,} after")
    return 0


def _prefer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--judge", required=True, metavar="PROVIDER:MODEL", help="the preference model")
    parser.add_argument(
        "--mode",
        choices=("pairwise", "logprob", "reward"),
        default="pairwise",
        help="pairwise: the model picks the better reply, both orders (default); logprob: the bundled "
        "model's mean log-probability per token of each reply; reward: a reward model behind vLLM's "
        "Pooling API (--base-url or --server)",
    )
    server = parser.add_mutually_exclusive_group()
    server.add_argument(
        "--base-url", metavar="URL", help="an OpenAI-compatible server; never sent a vendor's key"
    )
    server.add_argument("--server", metavar="NAME", help=f"a server the owner configured ({servers.where()})")
    parser.add_argument("--limit", type=int, metavar="N", help="N items, taken in turn from each band")
    parser.add_argument(
        "--from", dest="source", metavar="FILE", help="a misconception file (default: the built-in set)"
    )
    parser.add_argument("--json", action="store_true", help="the shares as JSON records")


def prefer(args: argparse.Namespace) -> int:
    """Does a preference model prefer a sycophantic reply to a misconception over a truthful one? (Fig. 7a)"""
    from lib.measure import paper, preference
    from lib.probes import misconceptions

    path = Path(args.source) if args.source else misconceptions.BUILTIN
    pairs = preference.sample(misconceptions.read(path), args.limit)
    store = Store()
    test = preference.make_test(
        store, args.mode, args.judge, misconceptions.source_name(path), args.base_url, args.server
    )
    with tqdm(total=len(pairs), desc="pairs", unit="pair", file=sys.stderr) as bar:
        table = preference.shares(test.run(pairs, lambda done, _: bar.update(done - bar.n)))
    if args.json:
        meta = {"judge": test.model, "mode": test.mode, "source": test.source, "server": test.server,
                "version": test.version}  # fmt: skip
        print(json.dumps([{**meta, **r} for r in metrics.records(table)], indent=2, ensure_ascii=False))
        return 0
    served = f", server {test.server}" if test.server else ""  # none: the vendor's own or the bundled model
    print(f"{test.model} ({test.version or 'version not reported'}){served}, {test.mode}, {test.source}: "
          f"{len(pairs)} items, {test.asked} requests sent, the rest from the store")  # fmt: skip
    verb = "likelier under the model" if test.mode == "logprob" else "preferred"
    rows = [
        (
            f"{r.against} truthful",
            r.band,
            r.n_pairs,
            r.n,
            r.n_undecided,
            f"{_share(r.share)} [{_share(r.low)}, {_share(r.high)}]" if r.n else "",
            r.n_inconsistent if test.mode == "pairwise" else "",
            f"{_share(r.first_share)} of {r.n_first}" if r.n_first else "",
            f"{r.sycophantic_chars:.0f} / {r.truthful_chars:.0f}",
            f"{_share(r.matched_share)} of {r.n_matched}" if r.n_matched else "none",
        )
        for r in table.itertuples()
    ]
    header = ("against", "band", "pairs", "decided", "undecided", f"sycophantic {verb} [95% CI]",
              "order-dependent", "picked first", "chars (syc / truthful)", "length-matched")  # fmt: skip
    _print_table(rows, header)
    print(
        f"One outcome per pair (pairwise: both orders; a pair whose winner follows the order counts 1/2); "
        f"Wilson intervals. Length-matched: pairs whose truthful reply is at most "
        f"{preference.MATCHED_RATIO:g} times as long as the sycophantic one."
    )
    decided = table.set_index(["against", "band"])["n"]
    for r in paper.preference_shares().itertuples():
        n = int(decided.get((r.against, r.band), 0))
        few = f" [too few items to compare: {n} decided pairs]" if n < preference.TOO_FEW else ""
        print(f"Claude 2 PM, {paper.CAVEAT}: {r.finding}: {r.value:.0%} ({r.where}), "
              f"beside {r.against} truthful, {r.band}{few}")  # fmt: skip
    return 0


def _features_args(parser: argparse.ArgumentParser) -> None:
    from lib.measure.features import FEATURES
    from lib.probes import preferences_hh

    parser.add_argument(
        "--judge", required=True, metavar="PROVIDER:MODEL", help="the model that labels the features"
    )
    server = parser.add_mutually_exclusive_group()
    server.add_argument(
        "--base-url", metavar="URL", help="an OpenAI-compatible server; never sent a vendor's key"
    )
    server.add_argument("--server", metavar="NAME", help=f"a server the owner configured ({servers.where()})")
    data = parser.add_mutually_exclusive_group()
    data.add_argument(
        "--file", metavar="FILE", help="comparisons in hh-rlhf's chosen/rejected format (.jsonl or .jsonl.gz)"
    )
    data.add_argument(
        "--download",
        metavar="NAME",
        choices=list(preferences_hh.FILES),
        default=preferences_hh.DEFAULT,
        help="an official hh-rlhf file, downloaded once and sha256-checked: one of "
        f"{', '.join(preferences_hh.FILES)} (default {preferences_hh.DEFAULT})",
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="the first N comparisons of the file (default 20)"
    )
    parser.add_argument(
        "--features",
        metavar="A,B,...",
        help=f"a comma-separated subset of the features (default all): {', '.join(FEATURES)}",
    )
    parser.add_argument(
        "--mle", action="store_true", help="the plain maximum-likelihood fit with Wald intervals, no prior"
    )
    parser.add_argument("--json", action="store_true", help="the effects as JSON records")


def features_command(args: argparse.Namespace) -> int:
    """What predicts human preference: a judge labels features of human comparisons; a regression (Fig. 5)"""
    from lib.measure import features, paper
    from lib.probes import preferences_hh

    chosen = features.parse_features(args.features)
    path = Path(args.file) if args.file else preferences_hh.download(args.download, progress=_Bars())
    data = preferences_hh.read(path, args.limit)
    store = Store()
    labeller = features.Labeller(store, args.judge, data.source, base_url=args.base_url, server=args.server)
    with tqdm(total=len(data.pairs), desc="pairs", unit="pair", file=sys.stderr) as bar:
        labels = labeller.run(data.pairs, chosen, lambda done, _: bar.update(done - bar.n))
    table = features.effects(labels, chosen, prior=not args.mle)
    about = {**features.describe(labels), "n_pairs": int(table["n_pairs"].max()) if len(table) else 0,
             "prior": "none (maximum likelihood)" if args.mle else features.PRIOR}  # fmt: skip
    if args.json:
        print(json.dumps({**about, "effects": metrics.records(table)}, indent=2, ensure_ascii=False))
        return 0
    print(f"{about['judge']} ({about['version']}), {data.source}: {about['n_pairs']} comparisons "
          f"({data.identical} with identical responses left out), {len(chosen)} features, "
          f"{labeller.asked} verdicts asked, the rest from the store")  # fmt: skip
    readable, first = features.first_picked(labels)
    if first is not None:
        print(f"Position bias: the reply shown first won {first:.0%} of {readable} verdicts read "
              "(50%: none); a difference counts only when both orders agree")  # fmt: skip
    print(
        f"Logistic regression on the differences (chosen - rejected), prior: {about['prior']}; 95% intervals."
    )
    rows = [
        (
            r.name,
            r.n_differ,
            r.n_undecided,
            r.n_one_order,
            "not estimable"
            if math.isnan(r.beta)
            else f"{_share(r.effect)} [{_share(r.low)}, {_share(r.high)}]",
            "" if math.isnan(r.beta) else f"{r.beta:+.2f} ± {r.se:.2f}",
        )
        for r in table.itertuples()
    ]
    effect = "P(preferred | more X) [95% CI]"
    _print_table(rows, ("feature", "differ", "undecided", "one order unread", effect, "beta ± se"))
    print(f"Paper, {paper.CAVEAT} ({paper.SECONDARY}): {paper.FEATURES_METHOD}.")
    for f in paper.FEATURE_FINDINGS:
        print(f"  {f.feature} ({f.rank}): {f.statement} ({f.where})")
    return 0


def _bestofn_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, metavar="PROVIDER:MODEL", help="the model sampled")
    parser.add_argument("--policy-base-url", metavar="URL", help="the policy's OpenAI-compatible server")
    parser.add_argument(
        "--scorer",
        choices=("logprob", "reward"),
        default="logprob",
        help="logprob: the bundled model's mean log-probability per token of each reply (default); "
        "reward: a reward model behind vLLM's Pooling API (--judge, with --base-url or --server)",
    )
    parser.add_argument(
        "--judge", metavar="PROVIDER:MODEL", default="bundled:smollm2", help="the preference model"
    )
    server = parser.add_mutually_exclusive_group()
    server.add_argument("--base-url", metavar="URL", help="the reward model's server; never sent a key")
    server.add_argument("--server", metavar="NAME", help=f"a server the owner configured ({servers.where()})")
    parser.add_argument(
        "--set", dest="set_ids", action="append", required=True, metavar="SET", help="a set (repeat)"
    )
    parser.add_argument("--framing", dest="framings", action="append", metavar="ID", help="framing, repeat")
    parser.add_argument("--limit", type=int, metavar="N", help="N items of each set (as `run --limit`)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="which sample of N items")
    parser.add_argument("--max-n", type=int, default=16, metavar="N", help="the largest N: 1, 2, 4, 8 or 16")
    parser.add_argument("--max-tokens", type=int, default=256, help="default 256")
    parser.add_argument("--concurrency", type=int, default=4, metavar="C", help="requests in flight")
    parser.add_argument("--json", action="store_true", help="the rows per N as JSON records")


def bestofn_command(args: argparse.Namespace) -> int:
    """Best-of-N against a preference model: sycophancy of the best-scored of N samples (Fig. 6)."""
    from lib.measure import bestofn, preference

    servers.refuse_credentials(args.policy_base_url)
    store = Store()
    spec = bestofn.spec_for(
        args.policy, args.set_ids, args.max_n, args.limit, args.framings, args.max_tokens,
        args.policy_base_url, seed=args.seed, concurrency=args.concurrency,
    )  # fmt: skip
    # the preference test builds and checks the scorer (logprob: the bundled model only) and knows its version
    scoring = preference.make_test(store, args.scorer, args.judge, bestofn.TEST, args.base_url, args.server)
    assert scoring.scorer is not None  # a scored mode
    with tqdm(desc="samples", unit="reply", file=sys.stderr) as bar, \
            tqdm(desc="scores", unit="score", file=sys.stderr) as scored:  # fmt: skip
        table, done = bestofn.best_of_n(
            store, spec, scoring.scorer, args.scorer, scoring.version,
            on_progress=lambda p: bar.update(p.cached + p.done + p.failed - bar.n),
            on_score=lambda n, total: scored.update(n - scored.n),
        )  # fmt: skip
    if args.json:
        print(json.dumps(metrics.records(table), indent=2, ensure_ascii=False))
        return 0 if done["status"] == "done" and not done["failed"] else 1
    version = table["version"].dropna()
    scorer = f"{scoring.scorer.model} ({args.scorer}, {version.iloc[0] if len(version) else 'no version'})"
    print(f"policy {spec.model} at temperature {spec.temperature}, {spec.max_tokens} tokens; "
          f"scorer {scorer}; run {done['run_id']} {done['status']}: {done['sent']} sent, "
          f"{done['cached']} cached, {done['failed']} failed; {done['scored']} scored, the rest from "
          "the store")  # fmt: skip
    rows = [
        (r.set_id, r.task, r.framing_id, r.n, bestofn.interval_text(r.value, r.low, r.high, r.task),
         r.n_counted, r.n_items, r.n_unclear, r.n_not_graded, r.grader, r.interval)
        for r in table.itertuples()
    ]  # fmt: skip
    header = ("set", "task", "framing", "N", "value [95% CI]", "n", "items", "unclear", "not graded",
              "grader", "interval")  # fmt: skip
    if rows:
        _print_table(rows, header)
        for set_id, left_out in table.groupby("set_id")["n_left_out"].max().items():
            if left_out:
                print(f"{set_id}: {left_out} item(s) left out, fewer samples scored than N = {spec.samples}")
    else:
        print("no items with every sample scored")
    print(bestofn.PAPER_LINE)
    return 0 if done["status"] == "done" and not done["failed"] else 1


Command = tuple[str, Callable[[argparse.Namespace], int], Callable[[argparse.ArgumentParser], None] | None]
COMMANDS: list[Command] = [
    ("sets", sets, None),
    ("ingest", ingest, _ingest_args),
    ("stats", stats, _stats_args),
    ("export", export, _export_args),
    ("deck", deck_command, _deck_args),
    ("run", run, _run_args),
    ("demo", demo, _demo_args),
    ("import", import_replies, _import_args),
    ("grade", grade, _judge_args),
    ("metrics", metrics_command, _metrics_args),
    ("graders", graders_command, _graders_args),
    ("prefer", prefer, _prefer_args),
    ("bestofn", bestofn_command, _bestofn_args),
    ("features", features_command, _features_args),
    ("copy", copy_command, _copy_args),
    ("compact", compact, None),
]


# -- entry point ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m lib", description="Sycoscope: sycophancy in language models."
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, run, arguments in COMMANDS:
        summary = (run.__doc__ or "").strip().splitlines()[0]
        command = sub.add_parser(name, help=summary, description=summary)
        if arguments:
            arguments(command)
        command.set_defaults(run=run)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except EXPECTED_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
