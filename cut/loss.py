"""The CUT objective as a pure function of target log-probabilities (docs/cut.md).

Per response token:
  Align-P / Align-N:          -log p(y_t)
  Misalign, t not flagged:     -log p_mis(t)
  Misalign, t flagged:         -alpha * w_t * log(1 - p_mis(t))   (1 - p clamped at 1e-5)
where, with `flagging` contrast (the paper's), t is flagged when p_al(t) / p_mis(t) >
lambda (p_al from the paired Align-N token in the same forward pass, detached); with
spans, when the token overlaps a span of the answer the judgment faults; with union,
when either holds. w_t = p_al(t)^gamma in the paper's dynamic variant, else 1. With
`flag_eos` off, a row's final token (its EOS) is never flagged: unlikelihood on it
teaches the policy not to stop. With `misalign_mle` off, unflagged Misalign tokens get
no loss at all: a negative answer then teaches the plain context only where it is
flagged.

The caller passes `normalizer` = the number of response tokens in the whole optimizer
step, so summing the returned losses over micro-batches gives the same gradient however
the step is split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cut.config import Flagging, LossWeights
from cut.examples import RowKind

ONE_MINUS_P_FLOOR = 1e-5


@dataclass(frozen=True)
class TokenTargets:
    """Flattened response tokens of one micro-batch, all rows together.

    `pair[t]` is, for a Misalign token, the index of the same response position in its
    Align-N row; -1 elsewhere."""

    kinds: torch.Tensor  # (T,) int64, RowKind values
    pair: torch.Tensor  # (T,) int64
    final: torch.Tensor  # (T,) bool, True at each row's last target (its EOS)
    in_span: torch.Tensor | None = None  # (T,) bool, Misalign tokens a judged span covers


@dataclass(frozen=True)
class LossOutput:
    loss: torch.Tensor  # scalar: this micro-batch's share of the step loss
    mle_sum: float  # sum of -log p over MLE-trained tokens (unnormalised)
    unlikelihood_sum: float  # sum of the flagged tokens' unlikelihood terms (unnormalised)
    n_tokens: int
    n_misalign: int
    flagged: torch.Tensor  # (T,) bool, True for flagged Misalign tokens
    ratio: torch.Tensor  # (T,) p_al / p_mis on Misalign tokens, NaN elsewhere
    preference_sum: float = 0.0  # DPO (cut.dpo): sum of the pairs' losses (unnormalised)


def flag_tokens(p_align: torch.Tensor, p_misalign: torch.Tensor, lam: float) -> torch.Tensor:
    """U = {t : p_al(t) / p_mis(t) > lambda}, written without division."""
    return (p_align - lam * p_misalign) > 0


def select_flagged(
    contrast: torch.Tensor, in_span: torch.Tensor, flagging: Flagging
) -> torch.Tensor:
    """The Misalign tokens that get unlikelihood, from the ratio test and the spans."""
    if flagging == "contrast":
        return contrast
    return in_span if flagging == "spans" else contrast | in_span


def cut_loss(
    logp: torch.Tensor, targets: TokenTargets, weights: LossWeights, normalizer: int
) -> LossOutput:
    """`logp` (T,) fp32 target log-probabilities with grad; returns this micro-batch's loss."""
    is_mis = targets.kinds == RowKind.MISALIGN
    mis_index = is_mis.nonzero().squeeze(1)  # (M,)
    logp_mis = logp[mis_index]
    with torch.no_grad():
        p_mis = logp_mis.exp()
        p_al = logp[targets.pair[mis_index]].exp()
        contrast = flag_tokens(p_al, p_mis, weights.lam)
        in_span = (
            torch.zeros_like(contrast) if targets.in_span is None else targets.in_span[mis_index]
        )
        flagged_mis = select_flagged(contrast, in_span, weights.flagging)
        if not weights.flag_eos:
            flagged_mis &= ~targets.final[mis_index]
        ratio = torch.full_like(logp, float("nan"))
        ratio[mis_index] = p_al / p_mis
        flagged = torch.zeros_like(is_mis)
        flagged[mis_index] = flagged_mis

    trained = ~flagged if weights.misalign_mle else ~is_mis
    mle_terms = -logp[trained]
    one_minus_p = torch.clamp(-torch.expm1(logp_mis[flagged_mis]), min=ONE_MINUS_P_FLOOR)
    ul_weight = weights.alpha
    if weights.gamma is not None:
        ul_weight = weights.alpha * p_al[flagged_mis].pow(weights.gamma)
    ul_terms = -ul_weight * torch.log(one_minus_p)
    loss = (mle_terms.sum() + ul_terms.sum()) / normalizer
    return LossOutput(
        loss=loss,
        mle_sum=float(mle_terms.detach().sum()),
        unlikelihood_sum=float(ul_terms.detach().sum()),
        n_tokens=int(logp.numel()),
        n_misalign=int(mis_index.numel()),
        flagged=flagged,
        ratio=ratio,
    )
