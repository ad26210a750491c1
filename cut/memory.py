"""What CUT training needs in memory, known from the model's shape and the settings
before any training: a trainer given a budget refuses settings that would not fit
instead of being killed mid-round.

A step's peak is the resident part (weights, their bf16 copies under autocast, the
trainable parameters' gradients and AdamW state, one chunk of output-layer logits, the
runtime) plus the activations of its largest forward/backward pass, which grow
linearly with the tokens that pass runs (`max_tokens_per_micro_batch` bounds them).
Per token, a decoder layer keeps about ACTIVATION_BYTES_PER_UNIT x (intermediate +
hidden) bytes (measured on SmolLM2-135M in fp32, the backward's working set included:
20.5, on an AVX2 CPU; bench/memory.py); bf16 autocast keeps less. With gradient
checkpointing only each layer's fp32 input is kept, plus one layer being recomputed.
Measured SmolLM2 peaks (1400 tokens a pass, LoRA) stayed 27-40% under these estimates:
1.39 / 2.91 GB fp32 and 1.48 / 2.51 GB bf16, with / without checkpointing.

Torch is imported only where a model is counted: placement and the API server use GB
and the estimates, and import no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cut.config import CUTConfig

if TYPE_CHECKING:
    from torch import nn

GB = 2**30
ACTIVATION_BYTES_PER_UNIT = 24  # per token, per layer, per (intermediate + hidden) unit
RUNTIME_BYTES = 0.8 * GB  # interpreter, torch, tokenizer, allocator slack
ADAMW_BYTES_PER_TRAINABLE = 16  # fp32 gradient + two moments + a step temporary


@dataclass(frozen=True)
class ModelShape:
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    parameters: int
    trainable: int  # under the config's finetuning (LoRA adapter or every weight)


@dataclass(frozen=True)
class MemoryEstimate:
    resident: int  # bytes held for the whole run
    activations: int  # bytes of the largest forward/backward pass

    @property
    def total_gb(self) -> float:
        return (self.resident + self.activations) / GB


def _lora_parameters(model: nn.Module, config: CUTConfig) -> int:
    """r x (inputs + outputs) per adapted layer: the sum of its weight's two dimensions,
    whichever way round the layer stores them (GPT-2's Conv1D: inputs first)."""
    from cut.modeling import is_target, linear_layers, lora_targets

    targets = lora_targets(model, config)
    return sum(
        config.lora_r * sum(module.weight.shape)
        for path, module in linear_layers(model).items()
        if is_target(path, targets)
    )


def model_shape(model_config, config: CUTConfig) -> ModelShape:
    """The shape of a transformers model config, its parameters counted on the meta
    device (no memory, any architecture)."""
    from cut.modeling import meta_model

    model = meta_model(model_config)
    parameters = sum(p.numel() for p in model.parameters())
    text = model_config.get_text_config()
    return ModelShape(
        layers=text.num_hidden_layers,
        hidden=text.hidden_size,
        intermediate=getattr(text, "intermediate_size", 4 * text.hidden_size),
        vocab=text.vocab_size,
        parameters=parameters,
        trainable=_lora_parameters(model, config) if config.finetuning == "lora" else parameters,
    )


def estimate_training_memory(
    shape: ModelShape, config: CUTConfig, weight_bytes: int = 4, autocast_bf16: bool = True
) -> MemoryEstimate:
    """Peak memory of training with `config` on a CPU (weights as loaded: fp32)."""
    # the weights, and as much again for the checkpoint file's pages mapped while
    # loading it (a margin: not all of them stay resident)
    weights = 2 * shape.parameters * weight_bytes
    if autocast_bf16:
        weights += shape.parameters * 2  # autocast's bf16 copy of each weight
    optimizer = shape.trainable * ADAMW_BYTES_PER_TRAINABLE
    logits = config.logit_chunk_size * shape.vocab * 4 * 3  # fp32 chunk, its exp, its grad
    per_layer = ACTIVATION_BYTES_PER_UNIT * (shape.intermediate + shape.hidden)
    if config.gradient_checkpointing:
        per_token = shape.layers * shape.hidden * 4 + per_layer
    else:
        per_token = shape.layers * per_layer
    return MemoryEstimate(
        resident=int(weights + optimizer + logits + RUNTIME_BYTES),
        activations=config.max_tokens_per_micro_batch * per_token,
    )


def peak_rss_bytes() -> int:
    """This process's own peak resident memory (VmHWM). `getrusage`'s ru_maxrss is not
    it in a child process: Linux carries the parent's peak across fork and exec, so a
    child of a 2 GB pytest reports at least 2 GB whatever it used."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError("/proc/self/status has no VmHWM line: peak memory is read on Linux")
