"""Micro-batches: padded token rows plus the flattened response targets the loss needs.

Only the hidden states that predict a response token go through the output layer, so
prompt positions cost nothing there and can never contribute loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from cut.examples import RowKind, TrainingItem
from cut.loss import TokenTargets


@dataclass(frozen=True)
class MisalignSpan:
    """Where one negative example's Misalign tokens sit in the flattened targets."""

    example_index: int
    start: int
    length: int


@dataclass(frozen=True)
class MicroBatch:
    input_ids: torch.Tensor  # (B, L) right-padded
    attention_mask: torch.Tensor  # (B, L)
    hidden_index: torch.Tensor  # (T,) flat index into (B*L) of the state predicting target t
    target_ids: torch.Tensor  # (T,)
    targets: TokenTargets
    misalign_spans: tuple[MisalignSpan, ...]

    @property
    def n_tokens(self) -> int:
        """Non-padding tokens, prompts included (the throughput measure)."""
        return int(self.attention_mask.sum())


def collate(items: Sequence[TrainingItem], pad_token_id: int) -> MicroBatch:
    rows = [(item, row) for item in items for row in item.rows]
    width = max(len(row.input_ids) for _, row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    hidden_index: list[int] = []
    target_ids: list[int] = []
    kinds: list[int] = []
    pair: list[int] = []
    spans: list[MisalignSpan] = []
    align_n_start = -1
    for b, (item, row) in enumerate(rows):
        n = len(row.input_ids)
        input_ids[b, :n] = torch.tensor(row.input_ids)
        attention_mask[b, :n] = 1
        start = len(target_ids)
        positions = range(row.prompt_length, n)
        hidden_index.extend(b * width + t - 1 for t in positions)
        target_ids.extend(row.input_ids[row.prompt_length :])
        kinds.extend([int(row.kind)] * row.response_length)
        if row.kind == RowKind.ALIGN_N:
            align_n_start = start
        if row.kind == RowKind.MISALIGN:
            # rows of a negative item come as (Align-N, Misalign) with equal response ids
            pair.extend(range(align_n_start, align_n_start + row.response_length))
            spans.append(MisalignSpan(item.example_index, start, row.response_length))
        else:
            pair.extend([-1] * row.response_length)
    return MicroBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        hidden_index=torch.tensor(hidden_index, dtype=torch.long),
        target_ids=torch.tensor(target_ids, dtype=torch.long),
        targets=TokenTargets(
            kinds=torch.tensor(kinds, dtype=torch.long), pair=torch.tensor(pair, dtype=torch.long)
        ),
        misalign_spans=tuple(spans),
    )


def chunked(items: Sequence[TrainingItem], size: int) -> list[list[TrainingItem]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def response_token_count(items: Sequence[TrainingItem]) -> int:
    """The step normaliser: response tokens over every row of every micro-batch."""
    return sum(row.response_length for item in items for row in item.rows)
