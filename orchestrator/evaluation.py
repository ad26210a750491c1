"""Win rate against a reference, computed as AlpacaEval does: a preference of 1 means
the reference won, 2 the policy won, 1.5 a tie; the win rate is the mean of
(preference - 1) in percent and its standard error the standard error of that mean."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

TIE = 1.5


@dataclass(frozen=True)
class WinRate:
    win_rate: float | None  # percent; None when nothing was decided
    standard_error: float | None
    n: int  # decided items
    ties: int
    failed: int  # items the annotator could not decide
    avg_length: float  # characters of the policy's outputs, as AlpacaEval reports


def win_rate(preferences: Sequence[float | None], outputs: Sequence[str]) -> WinRate:
    decided = [p - 1 for p in preferences if p is not None]
    n = len(decided)
    return WinRate(
        win_rate=100 * statistics.fmean(decided) if n else None,
        standard_error=100 * statistics.stdev(decided) / math.sqrt(n) if n > 1 else None,
        n=n,
        ties=sum(p == TIE - 1 for p in decided),
        failed=len(preferences) - n,
        avg_length=statistics.fmean(len(o) for o in outputs) if outputs else 0.0,
    )
