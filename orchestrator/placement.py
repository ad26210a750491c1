"""Where a campaign's heavy actors run, decided before round 1.

On a cluster with GPUs, the generator replicas and the trainer are gang-scheduled in one
Ray placement group of whole-GPU bundles: each gets a GPU of its own, or, with
`placement.colocate`, the trainer shares replica 0's GPU, the engine keeping only
`generator.gpu_memory_utilization` of it and sleeping (weights offloaded, KV cache
freed) while the trainer works. Ray accounts fractional GPUs but never memory, so
fractions are only allowed where they are spelled out. On a CPU cluster the actors
declare memory and Ray places them by it. A plan that cannot fit is refused with the
numbers, before anything starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cut.memory import GB
from orchestrator.config import CampaignConfig


class PlacementError(ValueError):
    """The campaign's actors cannot all be placed on this cluster."""


@dataclass(frozen=True)
class NodeResources:
    name: str
    gpus: float
    memory: float  # bytes of Ray's `memory` resource


@dataclass(frozen=True)
class Plan:
    """Bundles (GPU plans only) and which actor takes which share of which bundle."""

    replicas: int
    generator_memory: float
    trainer_memory: float
    bundles: tuple[dict[str, float], ...] = ()
    colocate: bool = False
    generator_gpu_share: float = 0.0

    @property
    def gpus(self) -> bool:
        return bool(self.bundles)

    @property
    def trainer_bundle(self) -> int:
        return 0 if self.colocate else self.replicas

    @property
    def trainer_gpu_share(self) -> float:
        if not self.gpus:
            return 0.0
        return round(1.0 - self.generator_gpu_share, 6) if self.colocate else 1.0

    def describe(self) -> list[str]:
        if not self.gpus:
            trainer = (
                f"a trainer of {_gb(self.trainer_memory)}" if self.trainer_memory else "no trainer"
            )
            return [
                f"CPU: {self.replicas} generator replica(s) of {_gb(self.generator_memory)} "
                f"and {trainer} RAM, placed by Ray by memory"
            ]
        lines = [f"GPU placement group of {len(self.bundles)} whole-GPU bundle(s):"]
        for i, bundle in enumerate(self.bundles):
            actors = [f"generator {r}" for r in range(self.replicas) if r == i]
            if i == self.trainer_bundle:
                actors.append("trainer")
            lines.append(f"  GPU {i}: {' + '.join(actors)} ({_gb(bundle['memory'])} RAM)")
        if self.colocate:
            lines.append(
                f"  colocated: the engine keeps {self.generator_gpu_share:.0%} of GPU 0 and "
                "sleeps while the trainer works"
            )
        return lines


def _gb(nbytes: float) -> str:
    return f"{nbytes / GB:g} GB"


def make_plan(config: CampaignConfig, nodes: list[NodeResources]) -> Plan:
    """The plan for `config` on these nodes, or PlacementError saying what does not fit."""
    generator, replicas = config.generator, config.generator.replicas
    generator_memory = generator.memory_gb * GB
    trains = config.rounds > 0  # an evaluation alone (`cutloop eval`) starts no trainer
    trainer_memory = config.trainer.memory_gb * GB if trains else 0.0
    total_gpus = sum(math.floor(n.gpus) for n in nodes)
    if total_gpus == 0:
        plan = Plan(replicas, generator_memory, trainer_memory)
        _check_memory(plan, nodes)
        return plan
    colocate = config.placement.colocate
    if colocate and generator.gpu_memory_utilization is None:
        raise PlacementError(
            "placement.colocate needs generator.gpu_memory_utilization (the share of the GPU "
            "the engine may take, e.g. 0.4): the trainer uses the rest"
        )
    share = generator.gpu_memory_utilization or 1.0
    if colocate:
        bundles = [{"GPU": 1.0, "memory": generator_memory + trainer_memory}]
        bundles += [{"GPU": 1.0, "memory": generator_memory}] * (replicas - 1)
    else:
        bundles = [{"GPU": 1.0, "memory": generator_memory}] * replicas
        if trains:
            bundles.append({"GPU": 1.0, "memory": trainer_memory})
    plan = Plan(replicas, generator_memory, trainer_memory, tuple(bundles), colocate, share)
    if len(bundles) > total_gpus:
        hint = (
            "lower generator.replicas"
            if colocate
            else "lower generator.replicas, or set placement.colocate: true with "
            "generator.gpu_memory_utilization (the trainer shares replica 0's GPU)"
        )
        raise PlacementError(
            f"the plan needs {len(bundles)} GPUs ({replicas} generator replica(s)"
            f"{'' if colocate else ' + the trainer'}, a whole GPU each); the cluster has "
            f"{total_gpus} ({_per_node(nodes)}): {hint}"
        )
    if not _packs(bundles, nodes):
        asked = ", ".join(f"{bundle['memory'] / GB:g} GB" for bundle in bundles)
        raise PlacementError(
            f"the GPUs' nodes lack the RAM the bundles declare ({asked}; nodes: "
            f"{_per_node(nodes)}): lower generator.memory_gb or trainer.memory_gb"
        )
    return plan


def _per_node(nodes: list[NodeResources]) -> str:
    return ", ".join(f"{n.name}: {n.gpus:g} GPU, {n.memory / GB:.1f} GB" for n in nodes)


def _packs(bundles: list[dict[str, float]], nodes: list[NodeResources]) -> bool:
    """First-fit decreasing of the bundles into the nodes' whole GPUs and memory."""
    free = [[math.floor(n.gpus), n.memory] for n in nodes]
    for bundle in sorted(bundles, key=lambda b: -b["memory"]):
        node = next((f for f in free if f[0] >= 1 and f[1] >= bundle["memory"]), None)
        if node is None:
            return False
        node[0] -= 1
        node[1] -= bundle["memory"]
    return True


def _check_memory(plan: Plan, nodes: list[NodeResources]) -> None:
    """Each actor on some node, all of them together on the cluster (they run at once)."""
    largest = max((n.memory for n in nodes), default=0.0)
    total = sum(n.memory for n in nodes)
    asks = {"generator.memory_gb": plan.generator_memory, "trainer.memory_gb": plan.trainer_memory}
    for setting, asked in asks.items():
        if asked > largest:
            raise PlacementError(
                f"{setting}={asked / GB:g} is more than any Ray node offers ({largest / GB:.1f} "
                f"GB of memory resource): lower it, or run on a node with more memory"
            )
    together = plan.generator_memory * plan.replicas + plan.trainer_memory
    if together > total:
        raise PlacementError(
            f"generator.memory_gb × {plan.replicas} replicas + trainer.memory_gb = "
            f"{together / GB:g} GB is more than the Ray cluster offers ({total / GB:.1f} GB of "
            f"memory resource): lower them, or add memory"
        )


def cluster_nodes() -> list[NodeResources]:
    """The live nodes of the connected Ray cluster."""
    import ray

    return [
        NodeResources(
            n["NodeManagerAddress"] + (" (head)" if "node:__internal_head__" in n["Resources"]
                                       else ""),
            n["Resources"].get("GPU", 0.0),
            n["Resources"].get("memory", 0.0),
        )
        for n in ray.nodes()
        if n["Alive"]
    ]  # fmt: skip
