"""Where generators run: one Ray actor per replica, with its engine's environment.

This is the one place that sets the inference engines' environment variables. On a CPU
machine the replicas split the cores between them (vLLM binds its OpenMP threads to the
listed cores) and ask Ray for no CPU slots, so the trainer, which runs while the
generators are idle, is not kept waiting; on a GPU machine each replica takes one GPU.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from workers.engine import Completion, EngineConfig, SamplingConfig
from workers.generator import Generator


def engine_environment(config: EngineConfig, replica: int, replicas: int) -> dict[str, str]:
    cores = os.cpu_count() or 1
    per_replica = max(1, cores // replicas)
    first = (replica * per_replica) % cores
    last = min(cores, first + per_replica) - 1
    return {
        "VLLM_CPU_OMP_THREADS_BIND": f"{first}-{last}",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_CPU_KVCACHE_SPACE": str(config.kv_cache_gib),
        "OMP_NUM_THREADS": str(per_replica),  # Ray sets 1 in actors otherwise
        "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),  # quiet by default
    }


def start_generators(
    config: EngineConfig,
    replicas: int = 1,
    gpus_per_replica: float = 0,
    extra_env: dict[str, str] | None = None,
    memory_per_replica: int | None = None,
):
    """One actor per replica; `memory_per_replica` (bytes) is declared to Ray, which
    places a replica only on a node with that much memory resource left."""
    import ray

    actor = ray.remote(Generator)
    return [
        actor.options(
            num_cpus=0,
            num_gpus=gpus_per_replica,
            memory=memory_per_replica,
            runtime_env={
                "env_vars": {**(extra_env or {}), **engine_environment(config, i, replicas)}
            },
        ).remote(config)
        for i in range(replicas)
    ]


def generate_all(
    generators: Sequence, instructions: list[str], sampling: SamplingConfig
) -> list[list[Completion]]:
    """Data parallel: each replica answers a contiguous slice; results in input order."""
    import ray

    size = -(-len(instructions) // len(generators))  # ceil
    slices = [instructions[i : i + size] for i in range(0, len(instructions), size)]
    futures = [
        g.generate.remote(part, sampling) for g, part in zip(generators, slices, strict=False)
    ]
    return [result for part in ray.get(futures) for result in part]


def swap_all(generators: Sequence, checkpoint: str, version: int) -> list[int]:
    """Every replica serves `checkpoint` afterwards, or the SwapError of one is raised."""
    import ray

    return ray.get([g.update_weights.remote(checkpoint, version) for g in generators])
