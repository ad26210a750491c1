"""Micro-batches formed by a token budget: every forward pass stays within it, whatever
the policy happened to write, and a pair is never split."""

from __future__ import annotations

import pytest

from cut.batching import ItemTooLong, collate, micro_batches, packed_length
from cut.examples import ExampleBuilder, JudgedExample, Polarity
from cut.templates import AlpacaTemplate


def judged(n_chars: int, negative: bool = True) -> JudgedExample:
    polarity = Polarity.NEGATIVE if negative else Polarity.POSITIVE
    return JudgedExample("Say something.", "x" * n_chars, "Too long.", polarity)


@pytest.fixture
def items(tokenizer):
    lengths = [5, 120, 40, 300, 7, 90, 200, 60, 15, 250]
    examples = [judged(n, negative=i % 3 != 0) for i, n in enumerate(lengths)]
    return ExampleBuilder(tokenizer, AlpacaTemplate(), 1024).build(examples).items


@pytest.mark.parametrize("max_tokens", [700, 1200, 5000])
def test_every_pass_runs_at_most_the_budget_and_every_item_once(items, max_tokens, tokenizer):
    passes = micro_batches(items, max_items=8, max_tokens=max_tokens)
    assert sorted(i.example_index for p in passes for i in p) == list(range(len(items)))
    for micro in passes:
        batch = collate(micro, pad_token_id=0)
        assert batch.input_ids.numel() <= max_tokens  # rows x width, padding included
        assert len(micro) <= 8
        for item in micro:  # both rows of a pair in the same pass
            assert len(item.rows) == (2 if item.is_negative else 1)
    if max_tokens == 700:
        assert len(passes) > 2  # the budget, not the item count, split the step


def test_the_item_count_still_caps_a_pass(items):
    passes = micro_batches(items, max_items=3, max_tokens=100_000)
    assert [len(p) for p in passes] == [3, 3, 3, 1]


def test_an_item_longer_than_the_budget_is_refused_naming_it(items):
    longest = max(items, key=packed_length)
    with pytest.raises(ItemTooLong, match=f"example {longest.example_index} needs") as error:
        micro_batches(items, max_items=8, max_tokens=packed_length(longest) - 1)
    assert "max_tokens_per_micro_batch" in str(error.value)
