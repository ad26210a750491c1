"""The model side of a CUT step: LoRA/full preparation and the lean forward pass that
returns target log-probabilities only."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from cut.batching import MicroBatch
from cut.config import CUTConfig
from cut.logprobs import target_logprobs

MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")  # the paper's targets, Llama's names


def meta_model(model_config) -> nn.Module:
    """The causal LM of a transformers config on the meta device: its modules and shapes,
    any architecture, no memory for weights."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(model_config)


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """What LoRA can adapt, by module path: the layers peft's `all-linear` picks (nn.Linear,
    and Conv1D in GPT-2-style models), so the output head is left out."""
    from transformers.pytorch_utils import Conv1D

    head = model.get_output_embeddings()
    return {
        path: module
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear | Conv1D) and module is not head
    }


def is_target(path: str, targets: Sequence[str]) -> bool:
    """peft's rule for a list of names: a name matches a path it ends, dot-separated."""
    return any(path == name or path.endswith(f".{name}") for name in targets)


def lora_targets(model: nn.Module, config: CUTConfig) -> tuple[str, ...]:
    """The names of the layers LoRA adapts in `model` (a transformers model, not wrapped).

    Unset: the paper's MLP projections where the model has all three, else the last name
    of every linear layer (peft's `all-linear`; its resolver is private and cutloop needs
    the names before wrapping a model: for the memory estimate and for the generators'
    copy of the weights LoRA deltas merge into). Set: every name must match a linear
    layer; peft alone skips a name that matches nothing once another one matches."""
    layers = linear_layers(model)
    names = tuple(sorted({path.rsplit(".", 1)[-1] for path in layers}))
    wanted = config.lora_target_modules
    if wanted is None:
        return MLP_PROJECTIONS if set(MLP_PROJECTIONS) <= set(names) else names
    missing = [name for name in wanted if not any(is_target(path, [name]) for path in layers)]
    if missing:
        raise ValueError(
            f"lora_target_modules: {type(model).__name__} has no linear layer named "
            f"{', '.join(missing)} (its linear layers but the output head: {', '.join(names)})"
        )
    return wanted


def lora_targets_at(path: str, config: CUTConfig) -> tuple[str, ...]:
    """lora_targets of the model at `path` (a directory or hub id), its weights unread."""
    from transformers import AutoConfig

    return lora_targets(meta_model(AutoConfig.from_pretrained(path)), config)


def lora_config(config: CUTConfig, targets: Sequence[str]):
    """The peft LoraConfig of the CUT settings, adapting `targets` (see lora_targets)."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(targets),
        task_type="CAUSAL_LM",
    )


def prepare_for_training(model: nn.Module, config: CUTConfig) -> nn.Module:
    """Wrap in a LoRA adapter (peft) or train every weight; switch to train mode."""
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if config.finetuning == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(config, lora_targets(model, config)))
    if config.torch_compile:
        compile_layers(model)
    model.train()
    return model


def compile_layers(model: nn.Module) -> None:
    """Compile every decoder layer in place (inductor). Per layer, not the whole model: the
    layers share one graph, so it compiles once, and the packed 4-D mask and the chunked
    output layer stay eager. State-dict names are unchanged, so checkpoints and hot swaps
    are as without it."""
    decoder = unwrap(model).get_decoder()
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"cut.torch_compile: {type(decoder).__name__} has no `layers` list to compile; "
            "set torch_compile: false"
        )
    if output_weight(model).device.type == "cpu":
        require_cpp_compiler()
    for layer in layers:
        layer.compile()


def require_cpp_compiler() -> None:
    """Fail before any work where inductor could not build its CPU kernels."""
    from torch._inductor.cpp_builder import get_cpp_compiler
    from torch._inductor.exc import InvalidCxxCompiler

    try:
        get_cpp_compiler()
    except InvalidCxxCompiler:
        raise ValueError(
            "cut.torch_compile: compiling on a CPU needs a C++ compiler and none was found "
            "(install g++ or set $CXX), or set torch_compile: false"
        ) from None


def unwrap(model: nn.Module) -> nn.Module:
    """The transformers model under a peft wrapper (LoRA layers stay injected)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def output_weight(model: nn.Module) -> torch.Tensor:
    head = unwrap(model).get_output_embeddings()
    if not isinstance(head, nn.Linear) or head.bias is not None:
        raise ValueError(
            f"{type(unwrap(model)).__name__}: CUT needs a bias-free linear output layer, "
            f"found {type(head).__name__}"
        )
    return head.weight


def response_logprobs(model: nn.Module, batch: MicroBatch, chunk_size: int) -> torch.Tensor:
    """log p(target) at every response position of the micro-batch, (T,) fp32.

    Runs the decoder once over the packed sequences (Align-N and Misalign of a pair
    together, their shared prompt prefix once) and sends only the states that predict
    response tokens through the output layer."""
    weight = output_weight(model)
    device = weight.device
    hidden = (
        unwrap(model)
        .get_decoder()(
            input_ids=batch.input_ids.to(device),
            position_ids=batch.position_ids.to(device),
            attention_mask=attention_mask_for(model, batch.attention_mask).to(device),
            use_cache=False,
        )
        .last_hidden_state
    )  # (B, L, H)
    hidden = hidden.reshape(-1, hidden.shape[-1])[batch.hidden_index.to(device)]  # (T, H)
    return target_logprobs(hidden, weight, batch.target_ids.to(device), chunk_size=chunk_size)


def attention_mask_for(model: nn.Module, mask: torch.Tensor) -> torch.Tensor:
    """The packed (B, 1, L, L) boolean mask as the model's attention reads a 4-D mask (as
    given): SDPA masks with booleans, the eager path adds the mask to its scores, so there
    it becomes 0 where a query may see a key and the float minimum elsewhere. A model
    without a transformers config gets it as it is."""
    config = getattr(unwrap(model), "config", None)
    if getattr(config, "_attn_implementation", None) != "eager":
        return mask
    return torch.zeros(mask.shape).masked_fill_(~mask, torch.finfo(torch.float32).min)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_policy(path: str, config: CUTConfig, device: torch.device | None = None):
    """Model and tokenizer for training. A frozen LoRA base on CUDA is held in bf16;
    weights that are trained stay fp32 (autocast does the bf16 matmuls). LoRA targets
    the model lacks fail here, before any work."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    frozen_bf16 = config.finetuning == "lora" and device.type == "cuda"
    dtype = torch.bfloat16 if frozen_bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    if config.finetuning == "lora":
        lora_targets(model, config)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer
