"""LoRA targets on any architecture: unset, they come from the model's own linear layers
(the paper's MLP projections where a model has them); set, a name the model lacks fails
before training, naming it and the layers there are."""

import pytest
from peft import LoraConfig, get_peft_model

from cut.config import CUTConfig
from cut.memory import model_shape
from cut.modeling import MLP_PROJECTIONS, lora_targets, prepare_for_training
from tests.tiny_models import TINY_MODELS

VOCAB = 101


def adapted(model) -> set[str]:
    """The paths of the layers a peft model adapts."""
    return {path.removeprefix("base_model.model.") for path, m in model.named_modules()
            if hasattr(m, "lora_A")}  # fmt: skip


@pytest.mark.parametrize(
    ("architecture", "targets"),
    [
        ("llama", MLP_PROJECTIONS),
        ("qwen2", MLP_PROJECTIONS),
        ("gpt2", ("c_attn", "c_fc", "c_proj")),
    ],
)
def test_unset_targets_are_the_mlp_projections_else_every_linear_layer(architecture, targets):
    assert lora_targets(TINY_MODELS[architecture](VOCAB), CUTConfig()) == targets


def test_without_mlp_projections_lora_adapts_what_peft_all_linear_does():
    ours = prepare_for_training(TINY_MODELS["gpt2"](VOCAB), CUTConfig())
    peft = get_peft_model(TINY_MODELS["gpt2"](VOCAB), LoraConfig(target_modules="all-linear"))
    assert adapted(ours) == adapted(peft)
    assert len(adapted(ours)) == 2 * 4  # per block: c_attn, attn.c_proj, c_fc, mlp.c_proj
    assert not any("lm_head" in path for path in adapted(ours))


@pytest.mark.parametrize(
    ("targets", "missing"),
    [
        (MLP_PROJECTIONS, "gate_proj, up_proj, down_proj"),
        # peft alone would adapt c_attn and say nothing of gate_proj
        (("c_attn", "gate_proj"), "gate_proj"),
    ],
)
def test_targets_the_model_lacks_fail_naming_them_and_its_linear_layers(targets, missing):
    config = CUTConfig(lora_target_modules=targets)
    with pytest.raises(ValueError) as error:
        prepare_for_training(TINY_MODELS["gpt2"](VOCAB), config)
    assert str(error.value) == (
        f"lora_target_modules: GPT2LMHeadModel has no linear layer named {missing} "
        "(its linear layers but the output head: c_attn, c_fc, c_proj)"
    )


def test_a_name_may_be_a_path_suffix():
    model = prepare_for_training(
        TINY_MODELS["gpt2"](VOCAB), CUTConfig(lora_target_modules=("mlp.c_proj",))
    )
    assert adapted(model) == {"transformer.h.0.mlp.c_proj", "transformer.h.1.mlp.c_proj"}


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_the_memory_estimate_counts_the_adapter_peft_builds(architecture):
    model = TINY_MODELS[architecture](VOCAB)
    shape = model_shape(model.config, CUTConfig(lora_r=4))
    wrapped = prepare_for_training(model, CUTConfig(lora_r=4))
    assert shape.trainable == sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
