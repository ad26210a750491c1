"""Span-grounded flagging: judged character spans -> the response tokens they cover -> the
Misalign tokens that get unlikelihood, with `cut.flagging` spans, union or contrast."""

import math

import pytest
import torch
from transformers import AutoTokenizer

from cut.config import CUTConfig
from cut.examples import ExampleBuilder, JudgedExample, Polarity
from cut.loss import LossWeights, TokenTargets, cut_loss
from cut.spans import check_spans, covered_positions, merge_spans, token_offsets
from cut.templates import AlpacaTemplate
from cut.trainer import train_cut
from tests.cut.toys import M, hand_loss, toy_batch


def test_spans_are_sorted_and_overlapping_or_touching_ones_joined():
    assert merge_spans([(5, 7), (0, 2), (1, 3), (3, 4), (9, 9)]) == ((0, 4), (5, 7))


@pytest.mark.parametrize(
    ("spans", "message"),
    [([[3, 2]], r"\[3, 2\] is not within"), ([[0, 11]], "10 characters"), ([[1]], "pair")],
)
def test_a_span_outside_the_answer_is_refused_naming_it(spans, message):
    with pytest.raises(ValueError, match=message):
        check_spans(spans, 10)


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_dir):
    return AutoTokenizer.from_pretrained(smollm2_dir)


def covered_texts(tokenizer, text, spans):
    ids, offsets = token_offsets(tokenizer, text)
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    return [tokenizer.decode([ids[p]]) for p in sorted(covered_positions(offsets, spans))]


def test_a_span_covers_the_policy_tokens_it_overlaps_and_straddles(smollm2_tokenizer):
    text = "Hello world, isn't it grand?"
    # exactly the comma; then "lo wo" straddles the edges of "Hello" and " world"
    assert covered_texts(smollm2_tokenizer, text, [(11, 12)]) == [","]
    assert covered_texts(smollm2_tokenizer, text, [(3, 8)]) == ["Hello", " world"]
    # a span ending where a token starts does not cover that token
    assert covered_texts(smollm2_tokenizer, text, [(0, 5)]) == ["Hello"]


def test_a_tokenizer_without_offsets_is_refused_by_name(tokenizer):
    class SlowTokenizer:
        is_fast = False

    with pytest.raises(ValueError, match="SlowTokenizer reports no character offsets"):
        token_offsets(SlowTokenizer(), "ab, cd")


def test_a_negative_examples_span_positions_are_its_judged_characters(tokenizer):
    example = JudgedExample("Write.", "sea, sky", "No commas.", Polarity.NEGATIVE, ((3, 4),))
    item = ExampleBuilder(tokenizer, AlpacaTemplate(), 128).build_one(0, example)
    assert item.span_positions == {3}  # one token per character; EOS never covered
    assert (
        ExampleBuilder(tokenizer, AlpacaTemplate(), 128)
        .build_one(0, JudgedExample("Write.", "sea, sky", "No commas.", Polarity.NEGATIVE))
        .span_positions
        == frozenset()
    )


def with_spans(targets, misalign_covered):
    in_span = torch.zeros_like(targets.final)
    in_span[[4 + t for t in misalign_covered]] = True
    return TokenTargets(targets.kinds, targets.pair, targets.final, in_span)


@pytest.mark.parametrize(
    ("flagging", "expected"),
    # contrast at lambda 1.1 flags Misalign tokens 0 and 2 (ratios 6, 0.67, 1.125)
    [("contrast", [True, False, True]), ("spans", [False, True, False]),
     ("union", [True, True, True])],
)  # fmt: skip
def test_flagging_picks_the_ratio_test_the_spans_or_both(flagging, expected):
    _, logp, targets = toy_batch()
    out = cut_loss(logp, with_spans(targets, [1]), LossWeights(1.1, flagging=flagging), 7)
    assert out.flagged.tolist() == [False] * 4 + expected
    assert torch.isfinite(out.ratio[targets.kinds == M]).all()  # still reported


def test_span_flagging_loss_is_unlikelihood_on_the_judged_token_only():
    probs, logp, targets = toy_batch()
    out = cut_loss(logp, with_spans(targets, [1]), LossWeights(1.1, flagging="spans"), 7)
    # with lambda = inf nothing passes the ratio test: the hand loss is all MLE, then the
    # judged Misalign token (p 0.6... p_mis 0.3) swaps -log p for -log(1 - p)
    expected = hand_loss(probs, math.inf, 1.0) + math.log(0.3) - math.log(1 - 0.3)
    assert out.loss.item() == pytest.approx(expected / 7, rel=1e-9)
    ignored = cut_loss(logp, targets, LossWeights(1.1, flagging="spans"), 7)
    assert ignored.loss.item() != pytest.approx(out.loss.item())  # no spans: no unlikelihood


def test_training_with_spans_flags_exactly_the_judged_tokens(model, tokenizer):
    neg = Polarity.NEGATIVE
    examples = [
        JudgedExample("No commas.", "sea, sky, sun", "Commas.", neg, ((3, 4), (8, 9))),
        JudgedExample("Start with Hi.", "Yo there", "Starts with Yo.", neg, ((0, 2),)),
        JudgedExample("Add a title.", "no title", "No title.", Polarity.NEGATIVE),
        JudgedExample("Say hi.", "hi", "Perfect.", Polarity.POSITIVE),
    ]
    config = CUTConfig(finetuning="full", flagging="spans", precision="fp32", max_steps=1,
                       align_p_ratio=None)  # fmt: skip
    _, result = train_cut(model, tokenizer, examples, config)
    assert {i: r.positions for i, r in result.flagged.items()} == {0: [3, 8], 1: [0, 1], 2: []}
    assert result.steps[0].unlikelihood_loss > 0


def test_without_misalign_mle_a_negative_teaches_the_plain_context_only_where_flagged():
    probs, logp, targets = toy_batch()
    weights = LossWeights(1.1, flagging="spans", misalign_mle=False)
    out = cut_loss(logp, with_spans(targets, [1]), weights, 7)
    # Align-P and Align-N by MLE; of the Misalign row only the judged token, by unlikelihood
    expected = -sum(math.log(p) for p in probs[:4]) - math.log(1 - probs[5])
    assert out.loss.item() == pytest.approx(expected / 7, rel=1e-9)
    out.loss.backward()
    assert logp.grad[[4, 6]].tolist() == [0.0, 0.0]  # unflagged Misalign tokens: no gradient
    assert float(logp.grad[5]) > 0  # the judged token is pushed down
