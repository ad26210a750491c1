"""Tiny random models (Llama, and Qwen2 and GPT-2 for other architectures) and a
character tokenizer, built in-process: no files, no hub."""

from __future__ import annotations

from collections.abc import Callable

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def char_tokenizer(chat: bool = False) -> PreTrainedTokenizerFast:
    """One token per printable ASCII character (ids 0..94) plus special tokens."""
    vocab = {chr(code): code - 32 for code in range(32, 127)}
    vocab["\n"] = len(vocab)
    for special in ("<s>", "</s>", "<unk>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    if chat:
        tokenizer.chat_template = CHATML
    return tokenizer


# Llama and Qwen2 take the same shape settings
LLAMA_SHAPE = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
               "num_attention_heads": 4, "num_key_value_heads": 2,
               "max_position_embeddings": 512}  # fmt: skip


def tiny_llama(vocab_size: int, seed: int = 0, **overrides) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, **{**LLAMA_SHAPE, **overrides}))


def tiny_qwen2(vocab_size: int, seed: int = 0) -> Qwen2ForCausalLM:
    """Llama's layer names, with biased q/k/v projections."""
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab_size, **LLAMA_SHAPE))


def tiny_gpt2(vocab_size: int, seed: int = 0) -> GPT2LMHeadModel:
    """No Llama names: Conv1D layers (weights stored inputs-first) named c_attn, c_proj
    and c_fc; learned positions. No BOS/EOS ids of its own (GPT-2's are outside a tiny
    vocabulary): the tokenizer's EOS ends the answers."""
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=4,
                        n_positions=512, bos_token_id=None, eos_token_id=None)  # fmt: skip
    return GPT2LMHeadModel(config)


TINY_MODELS: dict[str, Callable[[int], PreTrainedModel]] = {
    "llama": tiny_llama,
    "qwen2": tiny_qwen2,
    "gpt2": tiny_gpt2,
}
