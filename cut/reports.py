"""What a CUT run reports back: per-step metrics and the flagged-token report."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StepMetrics:
    step: int  # 1-based optimizer step
    total_steps: int
    epoch: int  # 0-based; max_steps may end a run mid-epoch
    loss: float  # the step's objective (MLE + unlikelihood) / response tokens; DPO: per pair
    mle_loss: float  # MLE part, same normalisation
    unlikelihood_loss: float  # unlikelihood part, same normalisation
    n_flagged: int  # Misalign tokens flagged this step
    flagged_fraction: float  # n_flagged / Misalign tokens (0 when there are none)
    n_response_tokens: int
    n_tokens: int  # prompt + response tokens processed
    tokens_per_s: float
    learning_rate: float
    grad_norm: float
    seconds: float


@dataclass(frozen=True)
class FlaggedTokens:
    """The response tokens of one negative example that CUT pushed down.

    Positions index the response tokens (0 = first response token)."""

    example_index: int
    response_length: int
    positions: list[int]
    token_ids: list[int]
    texts: list[str]
    ratios: list[float]  # p_al / p_mis at each flagged position


@dataclass
class TrainResult:
    steps: list[StepMetrics] = field(default_factory=list)
    flagged: dict[int, FlaggedTokens] = field(default_factory=dict)  # by example index
    n_align_p: int = 0
    n_negative: int = 0
    n_pairs: int = 0  # DPO: (positive, negative) pairs
    too_long: list[int] = field(default_factory=list)
    positives_dropped: int = 0
