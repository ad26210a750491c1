"""The baselines trained by the same loop: SFT on positives and DPO on (positive, negative)
pairs; and the step cap."""

import math

import pytest
import torch

from cut.config import CUTConfig
from cut.dpo import build_pairs, preference_pairs, reference_logprobs
from cut.examples import ExampleBuilder, JudgedExample, Polarity
from cut.modeling import prepare_for_training
from cut.templates import AlpacaTemplate
from cut.trainer import accumulate_gradients, plan_steps, train_cut
from tests.tiny_models import tiny_llama

POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE
FP32 = {"precision": "fp32", "lora_dropout": 0.0, "finetuning": "full"}


def answer(instruction, response, polarity):
    judgment = "Perfect." if polarity == POS else "It misses the point."
    return JudgedExample(instruction, response, judgment, polarity)


EXAMPLES = [
    answer("Say hi.", "hi", POS),
    answer("Say hi.", "bye", NEG),
    answer("Say hi.", "hello there", NEG),
    answer("Say hi.", "hey", POS),
    answer("Say hi.", "no", NEG),
    answer("Count to 3.", "1 2 3", POS),
    answer("Count to 3.", "1 2", NEG),
    answer("Name a colour.", "seven", NEG),  # no positive: no pair
    answer("Name a fruit.", "apple", POS),  # no negative: no pair
]


def builder(tokenizer):
    return ExampleBuilder(tokenizer, AlpacaTemplate(), 256)


def test_every_negative_is_paired_with_a_positive_of_its_instruction_in_turn():
    assert preference_pairs(EXAMPLES) == [(0, 1), (3, 2), (0, 4), (5, 6)]


def test_sft_trains_on_the_positives_only(tokenizer):
    config = CUTConfig(method="sft", align_p_ratio=0.25, **FP32)
    _, result = train_cut(tiny_llama(len(tokenizer)), tokenizer, EXAMPLES, config)
    assert (result.n_align_p, result.n_negative, result.positives_dropped) == (4, 0, 5)
    assert all(step.unlikelihood_loss == 0 for step in result.steps)


def test_sft_without_positives_is_refused(tokenizer):
    negatives = [e for e in EXAMPLES if e.polarity == NEG]
    with pytest.raises(ValueError, match="no trainable examples for method 'sft'"):
        train_cut(tiny_llama(len(tokenizer)), tokenizer, negatives, CUTConfig(method="sft"))


def pair_logprobs(model, tokenizer, items):
    return reference_logprobs(model, items, 8, 4096, 0, 64)


def test_dpo_loss_starts_at_log_two_and_training_widens_the_margin(tokenizer):
    """With the policy equal to its reference every pair's margin is 0 (loss log 2); DPO
    steps must raise log pi(chosen) - log pi(rejected) against the reference's."""
    model = tiny_llama(len(tokenizer))
    items, too_long = build_pairs(builder(tokenizer), EXAMPLES)
    assert (len(items), too_long) == (4, [])
    before = pair_logprobs(model, tokenizer, items)
    config = CUTConfig(method="dpo", dpo_beta=0.5, learning_rate=1e-2, epochs=5, **FP32)
    model, result = train_cut(model, tokenizer, EXAMPLES, config)
    assert result.n_pairs == 4
    assert result.steps[0].loss == pytest.approx(math.log(2), rel=1e-5)
    after = pair_logprobs(model, tokenizer, items)
    for index, old in before.items():
        new = after[index]
        assert (new[0] - new[1]) > (old[0] - old[1]) + 0.1, index
    assert result.steps[-1].loss < math.log(2)


def test_dpo_update_is_the_same_whatever_the_micro_batch_split(tokenizer):
    items, _ = build_pairs(builder(tokenizer), EXAMPLES)
    grads = []
    for micro in (4, 1):
        config = CUTConfig(method="dpo", micro_batch_size=micro, batch_size=4, **FP32)
        model = tiny_llama(len(tokenizer))
        reference = {i: s + 0.3 * i for i, s in pair_logprobs(model, tokenizer, items).items()}
        model = prepare_for_training(model, config)
        totals = accumulate_gradients(model, tokenizer, items, config, None, 0, reference)
        assert totals.normalizer == 4
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, atol=2e-6, rtol=1e-4, msg=name)


def test_max_steps_caps_the_optimizer_steps(tokenizer):
    items = builder(tokenizer).build(EXAMPLES).items
    settings = {"batch_size": 2, "micro_batch_size": 2, "epochs": 3}
    assert len(plan_steps(items, CUTConfig(**settings))) == 15
    assert len(plan_steps(items, CUTConfig(**settings, max_steps=4))) == 4


def test_a_step_cap_does_not_change_which_epoch_a_step_is_in(tokenizer):
    """9 examples, batch 2: 5 steps an epoch. Capped at 7 of the 15 steps, steps 6 and 7
    are in the second epoch (0-based: 1), as they are in the uncapped run."""
    config = CUTConfig(
        batch_size=2, micro_batch_size=2, epochs=3, max_steps=7, align_p_ratio=None, **FP32
    )
    _, result = train_cut(tiny_llama(len(tokenizer)), tokenizer, EXAMPLES, config)
    assert [m.epoch for m in result.steps] == [0, 0, 0, 0, 0, 1, 1]
