"""LoRA updates sent as the small thing they are. A round trained with LoRA changes each
target weight by scaling · B @ A; instead of the merged model, the generators receive
the factors (megabytes where the model is gigabytes) and merge them into their own copy
of those weights, exactly as peft's merge does. The merged checkpoint on the trainer's
node stays the record and the fallback. Layers that store their weight inputs-first
(GPT-2's Conv1D; peft's fan_in_fan_out) take the transpose of B @ A, as peft merges them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

DELTA_DIR = "lora-delta"
DELTA_FILE = "delta.safetensors"
PEFT_PREFIX = "base_model.model."


@dataclass(frozen=True)
class LoraDelta:
    base_version: int  # the weights the adapter was trained on
    factors: dict[str, tuple[torch.Tensor, torch.Tensor, float]]  # weight -> (A, B, scaling)
    transposed: frozenset[str]  # weights stored inputs-first: their update is (B @ A)^T

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes + b.nbytes for a, b, _ in self.factors.values())


def lora_delta(model: nn.Module, base_version: int) -> LoraDelta:
    """The factors of every LoRA layer of a peft model, before it is merged."""
    factors = {}
    transposed: set[str] = set()
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            weight = f"{name.removeprefix(PEFT_PREFIX)}.weight"
            a = module.lora_A["default"].weight.detach().cpu().clone()
            b = module.lora_B["default"].weight.detach().cpu().clone()
            factors[weight] = (a, b, float(module.scaling["default"]))
            if module.fan_in_fan_out:
                transposed.add(weight)
    return LoraDelta(base_version, factors, frozenset(transposed))


def save_delta(delta: LoraDelta, checkpoint: Path) -> None:
    directory = Path(checkpoint) / DELTA_DIR
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"{n}:{part}": t for n, (a, b, _) in delta.factors.items()
               for part, t in (("A", a), ("B", b))}  # fmt: skip
    scaling = {n: s for n, (_, _, s) in delta.factors.items()}
    metadata = {
        "base_version": str(delta.base_version),
        "scaling": json.dumps(scaling),
        "transposed": json.dumps(sorted(delta.transposed)),
    }
    save_file(tensors, directory / DELTA_FILE, metadata=metadata)


def load_delta(checkpoint: Path) -> LoraDelta | None:
    """The delta saved beside a merged checkpoint; None for a full fine-tune's."""
    file = Path(checkpoint) / DELTA_DIR / DELTA_FILE
    if not file.is_file():
        return None
    with safe_open(str(file), framework="pt") as handle:
        metadata = handle.metadata()
        scaling = json.loads(metadata["scaling"])
        factors = {
            n: (handle.get_tensor(f"{n}:A"), handle.get_tensor(f"{n}:B"), s)
            for n, s in scaling.items()
        }
    # absent from deltas saved before it was recorded: weights stored outputs-first
    transposed = frozenset(json.loads(metadata.get("transposed", "[]")))
    return LoraDelta(int(metadata["base_version"]), factors, transposed)


def merged(weights: dict[str, torch.Tensor], delta: LoraDelta) -> dict[str, torch.Tensor]:
    """New values of the delta's weights: W + (B @ A) · scaling (its transpose for a
    weight stored inputs-first), computed in fp32 and added in W's dtype, as peft merges."""
    result = {}
    for name, (a, b, scaling) in delta.factors.items():
        update = (b.float() @ a.float()) * scaling
        weight = weights[name].clone()
        weight += (update.T if name in delta.transposed else update).to(weight.dtype)
        result[name] = weight
    return result
