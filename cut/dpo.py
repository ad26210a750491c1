"""DPO on the same judged answers (Rafailov et al. 2023): the baseline the CUT paper
compares with. A pair is a positive and a negative answer to one instruction, both in
the plain context; the reference is the policy as training starts (the round's starting
weights), its log-probabilities computed once before the first step.

  loss = -log sigmoid(beta * ((log pi(c) - log ref(c)) - (log pi(r) - log ref(r))))

averaged over the step's pairs, log pi(y) summed over the response tokens (EOS included).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from itertools import cycle

import torch
import torch.nn.functional as F
from torch import nn

from cut.batching import collate, micro_batches
from cut.examples import ExampleBuilder, JudgedExample, Polarity, TrainingItem
from cut.loss import LossOutput
from cut.modeling import response_logprobs


def preference_pairs(examples: Sequence[JudgedExample]) -> list[tuple[int, int]]:
    """(chosen, rejected) example indexes: every negative answer is paired with a
    positive answer to the same instruction, the positives taken in turn; instructions
    without both kinds give no pair."""
    by_instruction: dict[str, dict[Polarity, list[int]]] = defaultdict(lambda: defaultdict(list))
    for index, example in enumerate(examples):
        by_instruction[example.instruction][example.polarity].append(index)
    pairs = []
    for answers in by_instruction.values():
        positives, negatives = answers[Polarity.POSITIVE], answers[Polarity.NEGATIVE]
        if positives:
            pairs.extend(zip(cycle(positives), negatives))
    return pairs


def build_pairs(
    builder: ExampleBuilder, examples: Sequence[JudgedExample]
) -> tuple[list[TrainingItem], list[int]]:
    """Pairs as two-row items (chosen, rejected), each numbered by its rejected answer (a
    negative is in one pair at most); also the indexes of the answers left out because
    one of a pair does not fit max_length."""
    items, too_long = [], []
    for chosen, rejected in preference_pairs(examples):
        item = builder.build_preference(rejected, examples[chosen], examples[rejected])
        if item is None:
            too_long.extend((chosen, rejected))
        else:
            items.append(item)
    return items, sorted(set(too_long))


def sequence_logprobs(logp: torch.Tensor, items: Sequence[TrainingItem]) -> torch.Tensor:
    """(T,) token log-probabilities of collated pair items -> (pairs, 2) response sums."""
    lengths = [row.response_length for item in items for row in item.rows]
    sums = torch.stack([part.sum() for part in torch.split(logp, lengths)])
    return sums.view(len(items), 2)


@torch.no_grad()
def reference_logprobs(
    model: nn.Module,
    items: Sequence[TrainingItem],
    max_items: int,
    max_tokens: int,
    pad_id: int,
    chunk_size: int,
) -> dict[int, torch.Tensor]:
    """Each pair's (chosen, rejected) log-probabilities under `model` as it is now."""
    was_training = model.training
    model.eval()
    reference = {}
    for micro in micro_batches(items, max_items, max_tokens):
        logp = response_logprobs(model, collate(micro, pad_id), chunk_size)
        sums = sequence_logprobs(logp.float(), micro).cpu()
        reference.update((item.example_index, s) for item, s in zip(micro, sums, strict=True))
    model.train(was_training)
    return reference


def dpo_loss(
    logp: torch.Tensor,
    items: Sequence[TrainingItem],
    reference: dict[int, torch.Tensor],
    beta: float,
    normalizer: int,
) -> LossOutput:
    """`logp` (T,) of the collated pair items; `normalizer` = pairs in the whole step."""
    policy = sequence_logprobs(logp, items)
    ref = torch.stack([reference[item.example_index] for item in items]).to(policy)
    margin = (policy[:, 0] - ref[:, 0]) - (policy[:, 1] - ref[:, 1])
    losses = -F.logsigmoid(beta * margin)
    return LossOutput(
        loss=losses.sum() / normalizer,
        mle_sum=0.0,
        unlikelihood_sum=0.0,
        n_tokens=int(logp.numel()),
        n_misalign=0,
        flagged=torch.zeros_like(logp, dtype=torch.bool),
        ratio=torch.full_like(logp, float("nan")),
        preference_sum=float(losses.detach().sum()),
    )
