import math

import pytest

from judge.alpaca_eval_annotator import AlpacaEvalAnnotator, AlpacaEvalEndpoint
from judge.pairwise import PairwiseItem, PairwiseResult
from orchestrator.evaluate_round import verdicts
from orchestrator.evaluation import TIE, mcnemar, truncated_percent, win_rate
from tests.judge.fake_openai import FakeOpenAI
from tests.judge.requests import ITEMS


def test_win_rate_counts_ties_half_and_leaves_failures_out():
    score = win_rate([1.0, 2.0, 1.5, None], ["a", "bbb", "cc", "dddd"])
    assert score.win_rate == pytest.approx(50.0)
    # AlpacaEval: standard error of the mean of (preference - 1), in percent
    assert score.standard_error == pytest.approx(100 * 0.5 / math.sqrt(3))
    assert (score.n, score.ties, score.failed) == (3, 1, 1)
    assert score.avg_length == pytest.approx(2.5)


def test_win_rate_of_nothing_decided_is_unknown():
    score = win_rate([None, None], ["x", "y"])
    assert (score.win_rate, score.standard_error, score.n, score.failed) == (None, None, 0, 2)


def test_all_wins_is_100_with_no_spread():
    score = win_rate([2.0, 2.0], ["x", "y"])
    assert (score.win_rate, score.standard_error) == (100.0, 0.0)


def test_the_decisive_win_rate_leaves_ties_out():
    score = win_rate([2.0, 2.0, 1.0, 1.5, 1.5, None], ["x"] * 6)
    assert score.decisive_win_rate == pytest.approx(200 / 3)
    assert win_rate([1.5, 1.5], ["x", "y"]).decisive_win_rate is None


def test_truncated_counts_answers_cut_off_among_those_known():
    assert truncated_percent(["length", "stop", "stop", "length", None]) == 50.0
    assert truncated_percent([None]) is None


def paired(b: int, c: int, same: int = 3) -> tuple[dict[str, bool], dict[str, bool]]:
    """Baseline and current outcomes with b fail->pass and c pass->fail pairs."""
    baseline = {f"b{i}": False for i in range(b)} | {f"c{i}": True for i in range(c)}
    current = {f"b{i}": True for i in range(b)} | {f"c{i}": False for i in range(c)}
    for i in range(same):  # concordant pairs do not enter the test
        baseline[f"s{i}"] = current[f"s{i}"] = i % 2 == 0
    return baseline, current


@pytest.mark.parametrize(
    ("b", "c", "p"),
    [(10, 2, 0.03857421875), (2, 10, 0.03857421875), (0, 0, 1.0), (7, 0, 0.015625),
     (5, 5, 1.0), (1, 0, 1.0)],
)  # fmt: skip
def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs(b, c, p):
    test = mcnemar(*paired(b, c))
    assert (test.b, test.c, test.pairs) == (b, c, b + c + 3)
    assert test.p_value == pytest.approx(p)
    # the formula itself: min(1, 2 P[X <= min(b, c)]), X ~ Binomial(b + c, 1/2)
    n = b + c
    exact = min(1.0, 2 * sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n)
    assert test.p_value == pytest.approx(exact)


def test_mcnemar_pairs_only_instructions_both_rounds_answered():
    baseline, current = paired(4, 1)
    current["only-now"] = True
    baseline["only-before"] = False
    test = mcnemar(baseline, current)
    assert (test.b, test.c, test.pairs) == (4, 1, 8)


def test_win_rates_are_alpaca_evals_own_on_weighted_preferences():
    from judge.alpaca_eval_annotator import alpaca_eval

    preferences = [1.8, 1.2, 1.5, 2.0, 1.0, None, 1.65, 1.35]
    score = win_rate(preferences, ["x"] * len(preferences))
    theirs = alpaca_eval().metrics.pairwise_to_winrate(preferences)
    assert score.win_rate == pytest.approx(theirs["win_rate"])
    assert score.standard_error == pytest.approx(theirs["standard_error"])
    assert score.discrete_win_rate == pytest.approx(theirs["discrete_win_rate"])
    assert (score.n, score.ties, score.failed) == (theirs["n_total"], theirs["n_draws"], 1)


def test_identical_answers_tie_without_a_call_and_each_verdict_lands_on_its_pair():
    policy_best, reference_best, reference_longer = ITEMS[:3]
    pairs = [
        PairwiseItem("Say hi.", "hello", "hello"),
        policy_best,
        PairwiseItem("Say bye.", "bye", "bye"),
        reference_best,
        reference_longer,
    ]
    with FakeOpenAI() as server:
        endpoint = AlpacaEvalEndpoint(base_url=server.base_url, api_key_env="NO_KEY")
        annotator = AlpacaEvalAnnotator("weighted_alpaca_eval_gpt4_turbo", endpoint)
        results = verdicts(pairs, annotator.annotate)
        sent = [r.content for r in server.requests]
    assert [r.preference for r in results] == pytest.approx([TIE, 1.8, TIE, 1.2, 1.3])
    assert len(sent) == 3 and not any("Say hi." in c or "Say bye." in c for c in sent)
    with FakeOpenAI() as server:  # nothing to decide: no call at all
        assert verdicts(pairs[0:1], annotator.annotate) == [PairwiseResult(TIE)]
        assert server.requests == []


def test_the_wilson_interval_of_a_share_stays_within_0_and_100():
    from orchestrator.evaluation import wilson_interval95

    assert wilson_interval95(50, 100) == pytest.approx((40.383, 59.617), abs=1e-3)
    low, high = wilson_interval95(0, 150)  # no item met: the normal interval would be [0, 0]
    assert low == pytest.approx(0, abs=1e-9) and high == pytest.approx(2.497, abs=1e-3)
    assert wilson_interval95(100, 10)[1] == pytest.approx(100)
