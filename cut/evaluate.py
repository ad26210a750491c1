"""Measuring what CUT moves, without training: the objective and the likelihoods of the
judged responses in each context. Used for before/after summaries and in tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cut.batching import chunked, collate, response_token_count
from cut.config import CUTConfig
from cut.examples import JudgedExample, RowKind
from cut.loss import cut_loss
from cut.modeling import response_logprobs
from cut.trainer import example_builder


@dataclass(frozen=True)
class LikelihoodReport:
    loss: float  # the CUT objective per response token
    align_p_logp: float  # mean log p of positive responses, plain context (want up)
    align_n_logp: float  # mean log p of negative responses, judged context (want up)
    misalign_logp: float  # mean log p of negative responses, plain context
    flagged_logp: float  # mean log p of the flagged tokens, plain context (want down)
    flagged_fraction: float  # share of Misalign tokens flagged
    flagged: torch.Tensor  # (M,) bool over all Misalign tokens, in example order


def _mean(values: list[torch.Tensor]) -> float:
    joined = torch.cat(values)
    return float(joined.mean()) if joined.numel() else float("nan")


@torch.no_grad()
def measure(
    model: nn.Module,
    tokenizer,
    examples: Sequence[JudgedExample],
    config: CUTConfig,
    flagged: torch.Tensor | None = None,
) -> LikelihoodReport:
    """Likelihoods under the current weights. `flagged` (from an earlier report) fixes
    which tokens count as flagged, so before/after compare the same tokens; by default
    the current weights decide."""
    was_training = model.training
    model.eval()
    builder = example_builder(tokenizer, config)
    items = builder.build(examples).items
    normalizer = response_token_count(items)
    loss = 0.0
    by_kind: dict[RowKind, list[torch.Tensor]] = {kind: [] for kind in RowKind}
    flags: list[torch.Tensor] = []
    for micro in chunked(items, config.micro_batch_size):
        batch = collate(micro, builder.pad_token_id)
        logp = response_logprobs(model, batch, config.logit_chunk_size)
        out = cut_loss(logp, batch.targets, config.loss_weights, normalizer)
        loss += float(out.loss)
        flags.append(out.flagged[batch.targets.kinds == RowKind.MISALIGN])
        for kind in RowKind:
            by_kind[kind].append(logp[batch.targets.kinds == kind])
    model.train(was_training)
    misalign_logp = torch.cat(by_kind[RowKind.MISALIGN])
    if flagged is None:
        flagged = torch.cat(flags)
    return LikelihoodReport(
        loss=loss,
        align_p_logp=_mean(by_kind[RowKind.ALIGN_P]),
        align_n_logp=_mean(by_kind[RowKind.ALIGN_N]),
        misalign_logp=_mean([misalign_logp]),
        flagged_logp=_mean([misalign_logp[flagged]]),
        flagged_fraction=float(flagged.float().mean()) if flagged.numel() else 0.0,
        flagged=flagged,
    )
