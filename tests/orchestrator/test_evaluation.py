import math

import pytest

from orchestrator.evaluation import win_rate


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
