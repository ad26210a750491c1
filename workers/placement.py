"""Where generators run: one Ray actor per replica, with its engine's environment.

This is the one place that sets the inference engines' environment variables. On a CPU
machine the replicas split the cores between them (vLLM binds its OpenMP threads to the
listed cores) and ask Ray for no CPU slots, so the trainer, which runs while the
generators are idle, is not kept waiting; on a GPU machine each replica takes the
bundle of the campaign's placement plan it is given.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from workers.engine import Completion, EngineConfig, SamplingConfig, SwapError
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
        # the engine core in the actor's own process: weights received through the object
        # store are handed to it in place (a second process needs them serialised), and
        # it starts faster, generates faster and takes less memory on a CPU (measured)
        "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
        "VLLM_LOGGING_LEVEL": os.environ.get("VLLM_LOGGING_LEVEL", "WARNING"),  # quiet by default
    }


def start_generators(
    config: EngineConfig,
    slots: Sequence[dict] | int = 1,
    extra_env: dict[str, str] | None = None,
    memory_per_replica: int | None = None,
):
    """One actor per replica: `slots` is their number, or per replica the Ray options
    that place it (a placement group bundle and GPU share); `memory_per_replica` (bytes)
    is declared to Ray, which places a replica only on a node with that much left."""
    import ray

    slots = [{}] * slots if isinstance(slots, int) else list(slots)
    actor = ray.remote(Generator)
    return [
        actor.options(
            num_cpus=0,
            memory=memory_per_replica,
            runtime_env={
                "env_vars": {**(extra_env or {}), **engine_environment(config, i, len(slots))}
            },
            **slot,
        ).remote(config)
        for i, slot in enumerate(slots)
    ]


def _slices(instructions: list[str], replicas: int) -> list[tuple[int, list[str]]]:
    size = -(-len(instructions) // replicas)  # ceil
    return [(i, instructions[i : i + size]) for i in range(0, len(instructions), size)]


def stream_all(
    generators: Sequence, instructions: list[str], sampling: SamplingConfig
) -> Iterator[tuple[int, list[Completion]]]:
    """Data parallel and streaming: each replica gets its contiguous slice at once (its
    engine batches them continuously); (instruction index, samples) in finishing order."""
    import ray

    streams = {
        g.stream.options(num_returns="streaming").remote(part, sampling): offset
        for g, (offset, part) in zip(generators, _slices(instructions, len(generators)),
                                     strict=False)
    }  # fmt: skip
    while streams:
        ready, _ = ray.wait(list(streams), num_returns=1)
        for stream in ready:
            try:
                index, samples = ray.get(next(stream))
            except StopIteration:
                del streams[stream]
                continue
            yield streams[stream] + index, samples


def generate_all(
    generators: Sequence, instructions: list[str], sampling: SamplingConfig
) -> list[list[Completion]]:
    """Every instruction's samples, in input order."""
    answers: list[list[Completion]] = [[] for _ in instructions]
    for index, samples in stream_all(generators, instructions, sampling):
        answers[index] = samples
    return answers


def swapped(generators: Sequence, swaps: Sequence) -> list[int]:
    """The version each replica serves after its swap (`swaps`: the swap calls' refs, one
    per replica). When any replica refused, a SwapError naming each refusal and what
    every replica serves now: some may have swapped, and replicas serving different
    versions must be swapped again together, never served from silently."""
    import ray

    refusals = []
    for replica, swap in enumerate(swaps):
        try:
            ray.get(swap)
        except SwapError as error:
            cause = getattr(error, "cause", error)  # under Ray's wrapper, the replica's own
            refusals.append(f"replica {replica}: {cause}")
    serving = ray.get([g.version.remote() for g in generators])
    if refusals:
        versions = ", ".join(f"v{v}" for v in serving)
        raise SwapError(f"{'; '.join(refusals)} (replicas now serve {versions})")
    return serving


def swap_all(generators: Sequence, checkpoint: str, version: int) -> list[int]:
    """Every replica serves `checkpoint` (a directory on its node) afterwards, or a
    SwapError says which refused (`swapped`)."""
    return swapped(generators, [g.update_weights.remote(checkpoint, version) for g in generators])


def send_weights(
    generators: Sequence, trainer, location: str, version: int, keep: tuple[str, ...] = ()
) -> list[int]:
    """Every replica serves the checkpoint at `location` on the trainer's node: the
    trainer reads its files once into Ray's object store and each replica's node fetches
    them from there (no shared filesystem). Else a SwapError says which refused."""
    files = trainer.weight_files.remote(location)  # never fetched by this process
    return swapped(generators, [g.update_files.remote(files, version, keep) for g in generators])


def send_delta(generators: Sequence, trainer, location: str, version: int) -> list[int]:
    """Every replica merges the LoRA factors saved with the checkpoint at `location`;
    else a SwapError says which refused (send the whole weights then: replicas that
    merged and one that did not serve different versions)."""
    delta = trainer.delta.remote(location)
    return swapped(generators, [g.update_delta.remote(delta, version) for g in generators])
