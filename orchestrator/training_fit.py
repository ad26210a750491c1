"""Before a round trains: every example fits one forward pass, the LoRA targets name
layers the policy has, and the trainer's memory budget holds what the settings need, so
a setting that cannot work fails the round at build, naming the example or the setting,
instead of an error or an OOM kill mid-training. Torch and transformers are imported by
the checks, not here: the campaign driver's module, which the API server imports,
imports this one."""

from __future__ import annotations

from collections.abc import Sequence

from cut.config import CUTConfig
from cut.examples import JudgedExample
from cut.memory import MemoryEstimate, estimate_training_memory, model_shape
from orchestrator.round_context import RoundFailure

NEEDS = {
    "cut": "it needs a negative answer",
    "sft": "it needs a positive answer",
    "dpo": "it needs an instruction with a positive and a negative answer",
}


def training_memory(policy: str, cut: CUTConfig) -> MemoryEstimate:
    """What training `policy` with `cut` needs on a CPU (weights loaded in fp32)."""
    import torch
    from transformers import AutoConfig

    from cut.precision import autocast_dtype

    shape = model_shape(AutoConfig.from_pretrained(policy), cut)
    bf16 = autocast_dtype(cut.precision, torch.device("cpu")) == torch.bfloat16
    return estimate_training_memory(shape, cut, autocast_bf16=bf16)


def check_training_fits(
    policy: str,
    examples: Sequence[JudgedExample],
    generation_ids: Sequence[int],
    cut: CUTConfig,
    memory_gb: float | None,
    left_out: str = "none left out",
) -> None:
    """Raise RoundFailure when `cut.method` has nothing to train on (`left_out` says what
    the selection removed), an example exceeds `cut.max_tokens_per_micro_batch`,
    `cut.lora_target_modules` names a layer the policy lacks, or `memory_gb` (None: not
    checked, e.g. a GPU trainer) is less than the estimate."""
    from transformers import AutoTokenizer

    from cut.batching import ItemTooLong, check_fits
    from cut.modeling import lora_targets_at
    from cut.trainer import example_builder, training_items

    builder = example_builder(AutoTokenizer.from_pretrained(policy), cut)
    items, _ = training_items(builder, examples, cut)
    if not items:
        raise RoundFailure(
            f"build: method {cut.method} has nothing to learn from in the {len(examples)} "
            f"usable judged answers ({NEEDS[cut.method]}; {left_out})"
        )
    try:
        check_fits(items, cut.max_tokens_per_micro_batch)
    except ItemTooLong as error:
        raise RoundFailure(
            f"build: answer {generation_ids[error.example_index]} needs {error.tokens} tokens "
            f"in one forward pass, more than cut.max_tokens_per_micro_batch="
            f"{error.budget}: raise it (with trainer.memory_gb) or lower cut.max_length"
        ) from None
    if cut.finetuning == "lora":
        try:
            lora_targets_at(policy, cut)
        except ValueError as error:
            raise RoundFailure(f"build: cut.{error}") from None
    if memory_gb is None:
        return
    shortfall = memory_shortfall(training_memory(policy, cut).total_gb, cut, memory_gb)
    if shortfall is not None:
        raise RoundFailure(f"build: {shortfall}")


def memory_shortfall(needed: float, cut: CUTConfig, memory_gb: float) -> str | None:
    """What to change when training with `cut` needs `needed` GB, more than `memory_gb`."""
    if needed <= memory_gb:
        return None
    return (
        f"training needs ~{needed:.1f} GB with cut.max_tokens_per_micro_batch="
        f"{cut.max_tokens_per_micro_batch} (gradient_checkpointing: "
        f"{str(cut.gradient_checkpointing).lower()}), more than trainer.memory_gb="
        f"{memory_gb:g}: lower the budget, turn checkpointing on, or raise memory_gb"
    )
