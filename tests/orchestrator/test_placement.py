"""Placement plans: computed from the nodes' resources and refused with the numbers
when they cannot fit; reserved for real as Ray placement groups on a local cluster
whose nodes declare GPUs they do not have (Ray only counts them)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cut.memory import GB
from orchestrator.placement import NodeResources, PlacementError, make_plan
from tests.orchestrator.campaigns import tiny_campaign
from tests.ray_cluster import NodeSpec


def node(gpus: float, memory_gb: float, name: str = "n") -> NodeResources:
    return NodeResources(name, gpus, memory_gb * GB)


def config(replicas: int = 1, colocate: bool = False, share: float | None = None, **memory):
    return tiny_campaign(
        "placed",
        Path("policy"),
        generator={"replicas": replicas, "gpu_memory_utilization": share,
                   "memory_gb": memory.get("generator", 1)},
        trainer={"memory_gb": memory.get("trainer", 1)},
        placement={"colocate": colocate},
    )  # fmt: skip


def test_a_cpu_cluster_places_by_memory_alone():
    plan = make_plan(config(replicas=2), [node(0, 8)])
    assert not plan.gpus and plan.trainer_gpu_share == 0.0
    assert "CPU: 2 generator replica(s)" in plan.describe()[0]
    with pytest.raises(PlacementError, match=r"generator.memory_gb=9 is more than any Ray node"):
        make_plan(config(generator=9), [node(0, 8), node(0, 8)])
    with pytest.raises(PlacementError, match=r"× 2 replicas \+ trainer.memory_gb = 15 GB"):
        make_plan(config(replicas=2, generator=5, trainer=5), [node(0, 8), node(0, 6)])


def test_an_evaluation_alone_reserves_nothing_for_a_trainer_it_never_starts():
    evaluation = config(generator=4, trainer=8).model_copy(update={"rounds": 0})
    plan = make_plan(evaluation, [node(0, 6)])
    assert plan.trainer_memory == 0 and "and no trainer RAM" in plan.describe()[0]
    assert make_plan(evaluation, [node(2, 64)]).bundles == ({"GPU": 1.0, "memory": 4 * GB},)
    with pytest.raises(PlacementError, match=r"trainer.memory_gb=8 is more than any Ray node"):
        make_plan(config(generator=4, trainer=8), [node(0, 6)])


def test_each_actor_gets_a_whole_gpu_when_there_are_enough():
    plan = make_plan(config(replicas=2), [node(4, 64)])
    assert plan.bundles == ({"GPU": 1.0, "memory": GB},) * 3
    assert (plan.trainer_bundle, plan.trainer_gpu_share, plan.generator_gpu_share) == (2, 1.0, 1.0)


def test_too_few_gpus_is_refused_with_the_count_and_the_way_out():
    with pytest.raises(PlacementError) as refused:
        make_plan(config(replicas=2), [node(1, 64, "a"), node(1.5, 64, "b")])  # 1.5 counts as 1
    message = str(refused.value)
    assert "needs 3 GPUs (2 generator replica(s) + the trainer" in message
    assert "the cluster has 2 (a: 1 GPU, 64.0 GB, b: 1.5 GPU, 64.0 GB)" in message
    assert "placement.colocate" in message


def test_colocation_needs_an_explicit_engine_share_and_gives_the_trainer_the_rest():
    with pytest.raises(PlacementError, match=r"needs generator\.gpu_memory_utilization"):
        make_plan(config(colocate=True), [node(1, 64)])
    plan = make_plan(config(replicas=2, colocate=True, share=0.4, trainer=3), [node(2, 64)])
    assert plan.bundles == ({"GPU": 1.0, "memory": 4 * GB}, {"GPU": 1.0, "memory": GB})
    assert (plan.trainer_bundle, plan.trainer_gpu_share, plan.generator_gpu_share) == (0, 0.6, 0.4)
    assert any("keeps 40% of GPU 0 and sleeps" in line for line in plan.describe())


def test_a_bundle_must_find_its_memory_on_a_node_with_a_free_gpu():
    nodes = [node(1, 2, "small"), node(1, 64, "big")]
    assert make_plan(config(generator=1, trainer=40), nodes).gpus  # trainer to big, engine small
    with pytest.raises(PlacementError, match="lack the RAM the bundles declare"):
        make_plan(config(generator=40, trainer=40), nodes)


def probe(address: str, changes: dict, *held_gb: float) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "tests.orchestrator.placement_probe", address, json.dumps(changes),
         *map(str, held_gb)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_plans_reserve_real_placement_groups_on_a_cluster_with_gpus(ray_nodes):
    """Two nodes declaring 2 and 1 GPUs: actors started with the campaign's options get
    the GPUs the plan gave them, and nothing else can take them meanwhile."""
    with ray_nodes([NodeSpec(memory_gb=4, gpus=2), NodeSpec(memory_gb=4, gpus=1)]) as address:
        separate = probe(address, {"generator": {"replicas": 2}})
        placed = {role: tuple(where[:1]) + tuple(where[1]) for role, where in
                  separate["placed"].items()}  # fmt: skip
        assert len(set(placed.values())) == 3, placed  # three different (node, GPU) pairs
        assert all(len(where[1]) == 1 for where in separate["placed"].values())
        assert "did not reserve the campaign's 3 GPU bundle(s) in 2 s" in separate["second"]

        shared = probe(
            address,
            {"generator": {"replicas": 2, "gpu_memory_utilization": 0.4},
             "placement": {"colocate": True}},
        )  # fmt: skip
        where = shared["placed"]
        assert where["trainer"] == where["generator 0"] != where["generator 1"]

        refused = probe(address, {"generator": {"replicas": 3}})
        assert refused["refused"].startswith("the plan needs 4 GPUs")


def test_a_trainer_ray_cannot_place_fails_instead_of_waiting_for_ever(ray_nodes):
    """The plan fitted, then other work took the memory: the trainer is never scheduled."""
    with ray_nodes([NodeSpec(memory_gb=2)]) as address:
        late = probe(address, {"placement": {"ready_timeout_s": 3}}, 1.5)
    assert late["refused"] == (
        "the trainer was not scheduled in 3 s (placement.ready_timeout_s): no Ray node has "
        "trainer.memory_gb=1 free"
    )
