"""The model side of a CUT step: LoRA/full preparation and the lean forward pass that
returns target log-probabilities only."""

from __future__ import annotations

import torch
from torch import nn

from cut.batching import MicroBatch
from cut.config import CUTConfig
from cut.logprobs import target_logprobs


def lora_config(config: CUTConfig):
    """The peft LoraConfig of the CUT settings."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
    )


def prepare_for_training(model: nn.Module, config: CUTConfig) -> nn.Module:
    """Wrap in a LoRA adapter (peft) or train every weight; switch to train mode."""
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if config.finetuning == "lora":
        from peft import get_peft_model

        model = get_peft_model(model, lora_config(config))
    model.train()
    return model


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
            attention_mask=batch.attention_mask.to(device),  # 4-D: used as given
            use_cache=False,
        )
        .last_hidden_state
    )  # (B, L, H)
    hidden = hidden.reshape(-1, hidden.shape[-1])[batch.hidden_index.to(device)]  # (T, H)
    return target_logprobs(hidden, weight, batch.target_ids.to(device), chunk_size=chunk_size)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_policy(path: str, config: CUTConfig, device: torch.device | None = None):
    """Model and tokenizer for training. A frozen LoRA base on CUDA is held in bf16;
    weights that are trained stay fp32 (autocast does the bf16 matmuls)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or default_device()
    frozen_bf16 = config.finetuning == "lora" and device.type == "cuda"
    dtype = torch.bfloat16 if frozen_bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype).to(device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer
