"""A generator owns one inference engine and answers instructions in the CUT plain
context (inference never sees a judgment). Run it as a Ray actor through
`workers.placement`; Ray executes one method at a time, so a weight swap waits for the
generation in flight and the next generation sees the new weights."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil

from cut.templates import select_template
from workers.checkpoints import tensors_of
from workers.engine import (
    Completion,
    Engine,
    EngineConfig,
    SamplingConfig,
    SwapError,
    is_adapter,
)
from workers.lora_delta import LoraDelta, merged
from workers.received import received_tensors


def make_engine(config: EngineConfig) -> Engine:
    backend = config.backend
    if backend == "auto":
        backend = "vllm" if importlib.util.find_spec("vllm") else "hf"
    if backend == "vllm":
        from workers.vllm_engine import VLLMEngine

        return VLLMEngine(config)
    from workers.hf_engine import HFEngine

    return HFEngine(config)


class Generator:
    def __init__(self, config: EngineConfig) -> None:
        from transformers import AutoTokenizer

        self.config = config
        self.engine = make_engine(config)
        self._lora_weights: dict = {}  # LoRA target weights as served, to merge deltas into
        self.template = select_template(
            config.template, AutoTokenizer.from_pretrained(config.model)
        )

    def generate(self, instructions: list[str], sampling: SamplingConfig) -> list[list[Completion]]:
        return self.engine.generate([self.template.plain(x) for x in instructions], sampling)

    def stream(
        self, instructions: list[str], sampling: SamplingConfig
    ) -> Iterator[tuple[int, list[Completion]]]:
        """Every instruction queued at once; (index, samples) as each finishes. Call it
        as a Ray streaming generator (`num_returns="streaming"`)."""
        yield from self.engine.stream([self.template.plain(x) for x in instructions], sampling)

    def update_files(
        self, files: dict[str, np.ndarray], version: int, keep: tuple[str, ...] = ()
    ) -> int:
        """New weights sent as their safetensors files' bytes (through Ray's object store:
        no shared filesystem), read in place and loaded by the engine. The weights of
        modules named in `keep` (LoRA targets) are kept, for merging the next rounds' LoRA
        deltas; they and the weights served hold the received object until replaced."""
        tensors = received_tensors(files)
        self.engine.update_tensors(tensors, version)
        self._lora_weights = {n: t for n, t in tensors.items() if any(f".{m}." in n for m in keep)}
        return self.engine.version

    def update_delta(self, delta: LoraDelta, version: int) -> int:
        """Merge a round's LoRA factors into the weights served (only those change).
        SwapError when this engine does not serve the weights the delta was trained on,
        or has no copy of them to merge into: send the full weights instead."""
        served = self.engine.version
        if served != delta.base_version:
            raise SwapError(
                f"serves v{served}; the v{version} delta applies to v{delta.base_version}"
            )
        if served == 0 and not set(delta.factors) <= set(self._lora_weights):
            self._lora_weights = tensors_of(Path(self.config.model), delta.factors.__contains__)
        if not set(delta.factors) <= set(self._lora_weights):
            raise SwapError(f"no copy of the v{served} weights the v{version} delta changes")
        changed = merged(self._lora_weights, delta)
        try:
            self.engine.update_changed(changed, version)
        except SwapError:
            self._lora_weights = {}
            raise
        self._lora_weights.update(changed)
        return self.engine.version

    def sleep(self) -> None:
        """Free the GPU while a colocated trainer works (vLLM sleep mode)."""
        self.engine.sleep()  # type: ignore[attr-defined]

    def wake_up(self) -> None:
        self.engine.wake_up()  # type: ignore[attr-defined]

    def update_weights(self, checkpoint: str, version: int) -> int:
        """A merged checkpoint replaces the weights; a LoRA adapter directory is served on
        top of the base weights. Returns the version now served."""
        path = Path(checkpoint)
        if is_adapter(path):
            self.engine.update_adapter(path, version)
        else:
            self.engine.update_weights(path, version)
        return self.engine.version

    def version(self) -> int:
        return self.engine.version

    def engine_pids(self) -> list[int]:
        """This process and any engine processes it spawned (none: vLLM runs in process)."""
        return [os.getpid(), *sorted(p.pid for p in psutil.Process().children(recursive=True))]
