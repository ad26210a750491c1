"""Where a judgment faults an answer: character spans of the response, and the response
tokens they cover.

A span is `(start, end)`, a half-open range of character offsets into the response text
(`response[start:end]` is the faulted text). A rule judge knows the spans it faults (the
comma, the forbidden word, the words past a limit); a model judge's quotes are found in
the answer (judge/quotes.py). CUT's `flagging: spans` turns them into the Misalign tokens
that get unlikelihood (docs/cut.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Span = tuple[int, int]


def merge_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Sorted, with overlapping or touching spans joined and empty ones dropped."""
    merged: list[list[int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return tuple((start, end) for start, end in merged)


def check_spans(spans: Iterable[Sequence[int]], text_length: int) -> tuple[Span, ...]:
    """Validated spans of a text of `text_length` characters; ValueError names the span."""
    checked = []
    for span in spans:
        if len(span) != 2 or not all(isinstance(v, int) for v in span):
            raise ValueError(f"spans: {list(span)!r} is not a pair of integers [start, end]")
        start, end = span
        if not 0 <= start < end <= text_length:
            raise ValueError(
                f"spans: [{start}, {end}] is not within the answer's {text_length} characters "
                "(0 <= start < end <= length)"
            )
        checked.append((start, end))
    return merge_spans(checked)


def token_offsets(tokenizer, text: str) -> tuple[list[int], list[Span]]:
    """The text's token ids (no special tokens) and each token's character range, as the
    tokenizer reports them: only fast (Rust) tokenizers can, which every model of the
    transformers hub has."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(
            f"{type(tokenizer).__name__} reports no character offsets, which judged spans "
            "need to find their tokens: use the model's fast tokenizer"
        )
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(encoded["input_ids"]), [tuple(o) for o in encoded["offset_mapping"]]


def covered_positions(offsets: Sequence[Span], spans: Sequence[Span]) -> frozenset[int]:
    """Indexes of the tokens whose characters overlap any span: a token straddling a span's
    edge is covered, one that only touches it is not."""
    return frozenset(
        index
        for index, (token_start, token_end) in enumerate(offsets)
        if token_end > token_start
        and any(token_start < end and token_end > start for start, end in spans)
    )
