"""Win rate against a reference, by alpaca_eval's own metric code: a preference of 1
means the reference won, 2 the policy won, 1.5 a tie; the win rate is the mean of
(preference - 1) in percent and its standard error the standard error of that mean.
Beside it: the decisive win rate (ties left out), the share of answers cut off, and an
exact McNemar test of a round against round 0 on paired pass/fail outcomes."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

TIE = 1.5


@dataclass(frozen=True)
class WinRate:
    win_rate: float | None  # percent; None when nothing was decided
    standard_error: float | None
    discrete_win_rate: float | None  # each preference rounded to a win, tie or loss
    decisive_win_rate: float | None  # wins / (wins + losses) in percent; None if all tied
    n: int  # decided items
    ties: int
    failed: int  # items the annotator could not decide
    avg_length: float  # characters of the policy's outputs, as AlpacaEval reports


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def win_rate(preferences: Sequence[float | None], outputs: Sequence[str]) -> WinRate:
    """AlpacaEval's head-to-head metrics (alpaca_eval.metrics.get_winrate) of the
    preferences; undecided items (None) are counted as failed, never as losses."""
    from judge.alpaca_eval_annotator import alpaca_eval

    avg_length = statistics.fmean(len(o) for o in outputs) if outputs else 0.0
    if all(p is None for p in preferences):  # alpaca_eval's discrete rule fails on none
        return WinRate(None, None, None, None, 0, 0, len(preferences), avg_length)
    metrics = alpaca_eval().metrics.get_winrate([{"preference": p} for p in preferences])
    wins, losses = int(metrics["n_wins"]), int(metrics["n_wins_base"])
    n = int(metrics["n_total"])
    return WinRate(
        win_rate=_number(metrics["win_rate"]),
        standard_error=_number(metrics["standard_error"]),
        discrete_win_rate=_number(metrics["discrete_win_rate"]),
        decisive_win_rate=100 * wins / (wins + losses) if wins + losses else None,
        n=n,
        ties=int(metrics["n_draws"]),
        failed=len(preferences) - n,
        avg_length=avg_length,
    )


def truncated_percent(finish_reasons: Sequence[str | None]) -> float | None:
    """Percent of answers cut off at max_new_tokens, over those whose finish is known."""
    known = [r for r in finish_reasons if r is not None]
    return 100 * sum(r == "length" for r in known) / len(known) if known else None


@dataclass(frozen=True)
class McNemar:
    b: int  # failed at baseline, passes now
    c: int  # passed at baseline, fails now
    pairs: int  # keys in both, discordant or not
    p_value: float  # exact two-sided


def mcnemar(baseline: Mapping[str, bool], current: Mapping[str, bool]) -> McNemar:
    """Exact McNemar test over the keys both hold: a two-sided binomial test of b against
    b + c discordant pairs at 1/2, p = min(1, 2 P[X <= min(b, c)]); 1 when nothing differs."""
    from scipy.stats import binomtest  # heavy import: only when a round is summarised

    shared = baseline.keys() & current.keys()
    b = sum(current[k] and not baseline[k] for k in shared)
    c = sum(baseline[k] and not current[k] for k in shared)
    p = binomtest(b, b + c, 0.5).pvalue if b + c else 1.0
    return McNemar(b, c, len(shared), min(1.0, float(p)))


def wilson_interval95(percent: float, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a share given in percent over `n` items, in
    percent: unlike the normal approximation it stays within 0-100 near the ends."""
    z, p = 1.959964, percent / 100
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)
