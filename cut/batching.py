"""Micro-batches: packed token sequences plus the flattened response targets the loss needs.

A negative example's two rows (Align-N: judged context + y, Misalign: plain context + y)
go into *one* packed sequence: their common prompt prefix P (with a chat template: the
system turn and the instruction) is stored once, followed by the two suffixes
A = judged rest + y and B = plain rest + y. A 4-D attention mask lets A and B see P and
themselves but not each other, and position ids restart after P for both, so every
token is computed exactly as in its own unpacked row while P's tokens are run once and
no token pads one row of a pair to the other's length.

Only the hidden states that predict a response token go through the output layer, so
prompt positions cost nothing there and can never contribute loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from cut.examples import Row, RowKind, TrainingItem
from cut.loss import TokenTargets

SHARED, PADDING = 0, -1  # segment ids; rows of a pair use 1 and 2


@dataclass(frozen=True)
class MisalignSpan:
    """Where one negative example's Misalign tokens sit in the flattened targets."""

    example_index: int
    start: int
    length: int


@dataclass(frozen=True)
class MicroBatch:
    input_ids: torch.Tensor  # (B, L) packed sequences, right-padded
    position_ids: torch.Tensor  # (B, L) positions each token has in its own row
    attention_mask: torch.Tensor  # (B, 1, L, L) bool, True where a query may see a key
    hidden_index: torch.Tensor  # (T,) flat index into (B*L) of the state predicting target t
    target_ids: torch.Tensor  # (T,)
    targets: TokenTargets
    misalign_spans: tuple[MisalignSpan, ...]
    n_tokens: int  # prompt + response tokens of every row, as if unpacked (throughput)
    n_packed_tokens: int  # tokens actually run: shared prefixes once, no padding


@dataclass
class _Packed:
    ids: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    # per row: packed index of the state predicting each response token
    predictors: list[list[int]] = field(default_factory=list)


def _shared_prefix_length(a: Sequence[int], b: Sequence[int], limit: int) -> int:
    n = 0
    while n < limit and a[n] == b[n]:
        n += 1
    return n


def _pack(rows: tuple[Row, ...]) -> _Packed:
    """One row as is; two rows as shared prefix + suffix A + suffix B. Each suffix keeps
    at least one prompt token, so its first response token has a predictor of its own."""
    limit = min(row.prompt_length for row in rows) - 1 if len(rows) > 1 else 0
    shared = _shared_prefix_length(rows[0].input_ids, rows[-1].input_ids, limit)
    packed = _Packed(
        ids=list(rows[0].input_ids[:shared]),
        positions=list(range(shared)),
        segments=[SHARED] * shared,
    )
    for segment, row in enumerate(rows, start=1 if len(rows) > 1 else SHARED):
        start = len(packed.ids) - shared  # packed index of this row's position `shared`
        packed.ids.extend(row.input_ids[shared:])
        packed.positions.extend(range(shared, len(row.input_ids)))
        packed.segments.extend([segment] * (len(row.input_ids) - shared))
        packed.predictors.append(
            [start + t - 1 for t in range(row.prompt_length, len(row.input_ids))]
        )
    return packed


def _attention_mask(segments: torch.Tensor) -> torch.Tensor:
    """(B, L) segment ids -> (B, 1, L, L): causal, and a key is visible to a query when it
    is shared or in the query's own segment. Padding sees only itself (never NaN)."""
    length = segments.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    query, key = segments[:, :, None], segments[:, None, :]
    visible = causal & (key != PADDING) & ((key == SHARED) | (key == query))
    visible |= torch.eye(length, dtype=torch.bool)
    return visible[:, None]


def collate(items: Sequence[TrainingItem], pad_token_id: int) -> MicroBatch:
    packed = [_pack(item.rows) for item in items]
    width = max(len(p.ids) for p in packed)
    input_ids = torch.full((len(items), width), pad_token_id, dtype=torch.long)
    position_ids = torch.zeros((len(items), width), dtype=torch.long)
    segments = torch.full((len(items), width), PADDING, dtype=torch.long)
    hidden_index: list[int] = []
    target_ids: list[int] = []
    kinds: list[int] = []
    pair: list[int] = []
    final: list[bool] = []
    in_span: list[bool] = []
    spans: list[MisalignSpan] = []
    for b, (item, seq) in enumerate(zip(items, packed, strict=True)):
        n = len(seq.ids)
        input_ids[b, :n] = torch.tensor(seq.ids)
        position_ids[b, :n] = torch.tensor(seq.positions)
        segments[b, :n] = torch.tensor(seq.segments)
        align_n_start = -1
        for row, predictors in zip(item.rows, seq.predictors, strict=True):
            start = len(target_ids)
            hidden_index.extend(b * width + i for i in predictors)
            target_ids.extend(row.input_ids[row.prompt_length :])
            kinds.extend([int(row.kind)] * row.response_length)
            final.extend([False] * (row.response_length - 1) + [True])
            judged = row.kind == RowKind.MISALIGN
            in_span.extend(judged and t in item.span_positions for t in range(row.response_length))
            if row.kind == RowKind.ALIGN_N:
                align_n_start = start
            if row.kind == RowKind.MISALIGN:
                # a negative item's rows are (Align-N, Misalign) with equal response ids
                pair.extend(range(align_n_start, align_n_start + row.response_length))
                spans.append(MisalignSpan(item.example_index, start, row.response_length))
            else:
                pair.extend([-1] * row.response_length)
    return MicroBatch(
        input_ids=input_ids,
        position_ids=position_ids,
        attention_mask=_attention_mask(segments),
        hidden_index=torch.tensor(hidden_index, dtype=torch.long),
        target_ids=torch.tensor(target_ids, dtype=torch.long),
        targets=TokenTargets(
            kinds=torch.tensor(kinds, dtype=torch.long),
            pair=torch.tensor(pair, dtype=torch.long),
            final=torch.tensor(final, dtype=torch.bool),
            in_span=torch.tensor(in_span, dtype=torch.bool),
        ),
        misalign_spans=tuple(spans),
        n_tokens=sum(len(row.input_ids) for item in items for row in item.rows),
        n_packed_tokens=sum(len(p.ids) for p in packed),
    )


def chunked(items: Sequence[TrainingItem], size: int) -> list[list[TrainingItem]]:
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def packed_length(item: TrainingItem) -> int:
    """Tokens one item occupies in a packed sequence (a pair's shared prefix once)."""
    return len(_pack(item.rows).ids)


class ItemTooLong(ValueError):
    """One example alone exceeds the token budget of a forward pass."""

    def __init__(self, example_index: int, tokens: int, budget: int) -> None:
        super().__init__(
            f"example {example_index} needs {tokens} packed tokens in one forward pass, "
            f"more than max_tokens_per_micro_batch={budget}: raise it (and the trainer's "
            f"memory), or lower max_length"
        )
        self.example_index, self.tokens, self.budget = example_index, tokens, budget


def check_fits(items: Sequence[TrainingItem], max_tokens: int) -> None:
    """Raise ItemTooLong for the first item that no micro-batch could hold."""
    for item in items:
        if (tokens := packed_length(item)) > max_tokens:
            raise ItemTooLong(item.example_index, tokens, max_tokens)


def micro_batches(
    items: Sequence[TrainingItem], max_items: int, max_tokens: int
) -> list[list[TrainingItem]]:
    """A step's items as forward passes of at most `max_items` items and `max_tokens`
    tokens run (rows x longest packed sequence, padding included): what a pass holds in
    activations grows with that product, so this bounds training memory whatever the
    policy happened to write. Longest first, so a pass holds similar lengths and pads
    little; the step's gradient does not depend on the split (one step normaliser)."""
    check_fits(items, max_tokens)
    lengths = {id(item): packed_length(item) for item in items}
    passes: list[list[TrainingItem]] = []
    width = 0
    for item in sorted(items, key=lambda i: lengths[id(i)], reverse=True):
        current = passes[-1] if passes else []
        if not current or len(current) == max_items or width * (len(current) + 1) > max_tokens:
            passes.append([item])
            width = lengths[id(item)]  # the longest of this pass: items come longest first
        else:
            current.append(item)
    return passes


def response_token_count(items: Sequence[TrainingItem]) -> int:
    """The step normaliser: response tokens over every row of every micro-batch."""
    return sum(row.response_length for item in items for row in item.rows)
