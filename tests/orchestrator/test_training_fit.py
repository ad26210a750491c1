"""Before training: an answer that cannot fit one forward pass, LoRA targets the policy
lacks, or settings that need more memory than the trainer has, fail the round at build
with a one-line reason."""

from __future__ import annotations

import pytest
from transformers import AutoConfig, AutoModelForCausalLM

from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity
from cut.memory import estimate_training_memory, model_shape
from orchestrator.round_context import RoundFailure
from orchestrator.training_fit import check_training_fits, training_memory
from tests.orchestrator.campaigns import save_tiny_policy

EXAMPLES = [
    JudgedExample("Add 2 and 2.", "It is 5." * n, "Wrong: 4.", Polarity.NEGATIVE)
    for n in (1, 30, 3)
]
IDS = [101, 102, 103]


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return str(save_tiny_policy(tmp_path_factory.mktemp("policy")))


def test_an_answer_longer_than_the_budget_fails_naming_it_and_the_setting(policy):
    cut = CUTConfig(max_tokens_per_micro_batch=300)
    with pytest.raises(RoundFailure) as error:
        check_training_fits(policy, EXAMPLES, IDS, cut, memory_gb=None)
    message = str(error.value)
    assert message.startswith("build: answer 102 needs ") and "\n" not in message
    assert "cut.max_tokens_per_micro_batch=300" in message
    roomy = cut.model_copy(update={"max_tokens_per_micro_batch": 1000})
    check_training_fits(policy, EXAMPLES, IDS, roomy, memory_gb=None)


def test_settings_needing_more_memory_than_the_trainer_has_fail(policy):
    cut = CUTConfig(max_tokens_per_micro_batch=1000)
    needed = training_memory(policy, cut).total_gb
    with pytest.raises(RoundFailure, match=r"trainer.memory_gb=0.5: lower the budget") as error:
        check_training_fits(policy, EXAMPLES, IDS, cut, memory_gb=0.5)
    assert f"~{needed:.1f} GB" in str(error.value)
    check_training_fits(policy, EXAMPLES, IDS, cut, memory_gb=needed + 0.1)


def test_the_estimate_grows_linearly_with_the_budget_and_checkpointing_cuts_it(policy):
    shape = model_shape(AutoConfig.from_pretrained(policy), CUTConfig())
    real = AutoModelForCausalLM.from_pretrained(policy)
    assert shape.parameters == sum(p.numel() for p in real.parameters())
    assert (shape.layers, shape.hidden, shape.intermediate) == (2, 32, 64)
    estimates = {
        (tokens, gc): estimate_training_memory(
            shape, CUTConfig(max_tokens_per_micro_batch=tokens, gradient_checkpointing=gc)
        )
        for tokens in (1000, 2000, 4000)
        for gc in (False, True)
    }
    for gc in (False, True):
        a, b, c = (estimates[t, gc].activations for t in (1000, 2000, 4000))
        assert b == 2 * a and c == 4 * a
        assert len({estimates[t, gc].resident for t in (1000, 2000, 4000)}) == 1
    assert estimates[4000, True].activations < estimates[4000, False].activations / 1.5


@pytest.mark.parametrize(
    ("method", "reason"),
    [("sft", "it needs a positive answer"), ("dpo", "a positive and a negative answer")],
)
def test_a_method_with_nothing_to_learn_from_fails_saying_what_it_needs(policy, method, reason):
    cut = CUTConfig(method=method, max_tokens_per_micro_batch=1000)
    with pytest.raises(RoundFailure, match=f"build: method {method} has nothing") as error:
        check_training_fits(policy, EXAMPLES, IDS, cut, None, "2 left out by the selection")
    assert reason in str(error.value) and "2 left out by the selection" in str(error.value)
    check_training_fits(policy, EXAMPLES, IDS, cut.model_copy(update={"method": "cut"}), None)


def test_lora_targets_the_policy_lacks_fail_naming_them(tmp_path):
    gpt2 = str(save_tiny_policy(tmp_path / "gpt2", "gpt2", chat=False))
    cut = CUTConfig(lora_target_modules=("c_attn", "q_proj"), max_tokens_per_micro_batch=1000)
    with pytest.raises(RoundFailure) as error:
        check_training_fits(gpt2, EXAMPLES, IDS, cut, memory_gb=None)
    assert str(error.value) == (
        "build: cut.lora_target_modules: GPT2LMHeadModel has no linear layer named q_proj "
        "(its linear layers but the output head: c_attn, c_fc, c_proj)"
    )
    check_training_fits(gpt2, EXAMPLES, IDS, cut.model_copy(update={"lora_target_modules": None}),
                        memory_gb=None)  # fmt: skip
