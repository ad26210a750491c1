"""The transformers backend: for tiny test models and machines without vLLM."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors.torch import load_file

from cut.batching import chunked
from workers.checkpoints import (
    checked_adapter,
    checked_tensors,
    checked_weight_files,
    checked_whole,
)
from workers.engine import Completion, EngineConfig, SamplingConfig, SwapError

STREAM_BATCH = 8  # prompts per batched generate() call while streaming

DTYPES = {"auto": torch.float32, "float32": torch.float32, "bfloat16": torch.bfloat16}


class HFEngine:
    def __init__(self, config: EngineConfig) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(config.model)
        self.tokenizer.padding_side = "left"  # generation continues every prompt's end
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(config.model, dtype=DTYPES[config.dtype])
        self.model.eval()
        self.version = 0
        self.adapter: str | None = None  # name of the LoRA adapter served, if any
        self.weights: Path | None = Path(config.model)  # the files under any adapter

    def generate(self, prompts: list[str], sampling: SamplingConfig) -> list[list[Completion]]:
        inputs = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        )
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        greedy = sampling.temperature == 0
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                max_new_tokens=sampling.max_new_tokens,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                top_k=None,
                num_return_sequences=sampling.n,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        width = inputs["input_ids"].shape[1]
        eos = self.tokenizer.eos_token_id
        results: list[list[Completion]] = []
        for p, prompt_mask in enumerate(inputs["attention_mask"]):
            samples = []
            for k in range(sampling.n):
                new = output[p * sampling.n + k, width:].tolist()
                stopped = eos in new
                new = (
                    new[: new.index(eos)]
                    if stopped
                    else [t for t in new if t != self.tokenizer.pad_token_id]
                )
                samples.append(
                    Completion(
                        text=self.tokenizer.decode(new, skip_special_tokens=True),
                        prompt_tokens=int(prompt_mask.sum()),
                        completion_tokens=len(new) + int(stopped),
                        finish_reason="stop" if stopped else "length",
                        sample_index=k,
                        policy_version=self.version,
                    )
                )
            results.append(samples)
        return results

    def stream(
        self, prompts: list[str], sampling: SamplingConfig
    ) -> Iterator[tuple[int, list[Completion]]]:
        """(prompt index, samples) batch by batch: transformers has no continuous batching."""
        done = 0
        for batch in chunked(prompts, STREAM_BATCH):
            for offset, samples in enumerate(self.generate(list(batch), sampling)):
                yield done + offset, samples
            done += len(batch)

    def update_tensors(self, tensors: dict[str, torch.Tensor], version: int) -> None:
        if self.adapter is not None:
            raise SwapError(f"v{version}: the HF backend serves an adapter; start a new engine")
        checked_whole(tensors, self._expected(), f"v{version}'s weights")
        self.model.load_state_dict(tensors, strict=False)
        self.weights = None  # from memory, not a checkpoint's files
        self.version = version

    def update_changed(self, tensors: dict[str, torch.Tensor], version: int) -> None:
        if self.adapter is not None:
            raise SwapError(f"v{version}: the HF backend serves an adapter; start a new engine")
        checked_tensors(tensors, self._expected())
        self.model.load_state_dict(tensors, strict=False)
        self.version = version

    def _expected(self) -> dict[str, tuple[int, ...]]:
        expected = {n: tuple(t.shape) for n, t in self.model.state_dict().items()}
        if getattr(self.model.config, "tie_word_embeddings", False):
            expected.pop("lm_head.weight", None)
        return expected

    def update_weights(self, checkpoint: Path, version: int) -> None:
        if self.adapter is not None:
            raise SwapError(f"{checkpoint}: the HF backend serves an adapter; start a new engine")
        self._load_weights(checkpoint)
        self.version = version

    def _load_weights(self, checkpoint: Path) -> None:
        files = checked_weight_files(checkpoint, self._expected())
        state: dict[str, torch.Tensor] = {}
        for file in files:
            state.update(load_file(str(file)))
        try:
            self.model.load_state_dict(state, strict=False)
        except RuntimeError as error:
            raise SwapError(f"{checkpoint}: {error}") from None
        self.weights = Path(checkpoint)

    def update_adapter(self, adapter: Path, version: int) -> None:
        checked_adapter(adapter, self.config.max_lora_rank)
        if self.weights != Path(self.config.model):  # adapters are trained on the base model
            self._load_weights(Path(self.config.model))
        name = f"v{version}"
        try:
            self.model.load_adapter(str(adapter), adapter_name=name)
        except Exception as error:
            raise SwapError(f"{adapter}: adapter refused ({error})") from None
        self.model.set_adapter(name)
        self.adapter = name
        self.version = version
