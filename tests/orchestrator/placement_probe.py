"""Run in a process of its own (the test session's Ray is already joined): connect to
the cluster at argv[1], reserve a campaign's placement (argv[2]: JSON of setting
changes) and report, as one JSON line, the plan and where each actor would run: a
stand-in actor per role, started with exactly the campaign's options, says its node
and the GPU ids Ray gave it. With argv[3], other work first takes that many GB and the
trainer is started."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import ray

from orchestrator.placement import PlacementError
from orchestrator.runtime import CampaignWorkers
from tests.orchestrator.campaigns import tiny_campaign


@ray.remote(num_cpus=0)
class Where:
    def where(self) -> tuple[str, list[str]]:
        context = ray.get_runtime_context()
        return context.get_node_id(), [str(g) for g in ray.get_gpu_ids()]


def main() -> None:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(address=sys.argv[1], log_to_driver=False)
    config = tiny_campaign("placed", Path("unused"), **json.loads(sys.argv[2]))
    try:
        workers = CampaignWorkers(config, "unused", Path("unused"), "unused")
        if len(sys.argv) > 3:  # argv[3]: GB some other work holds before the trainer starts
            hold = Where.options(memory=int(float(sys.argv[3]) * 2**30)).remote()
            ray.get(hold.where.remote(), timeout=60)
            workers.trainer()
    except PlacementError as error:
        print(json.dumps({"refused": str(error)}))
        return
    plan = workers.plan
    roles = {f"generator {i}": (i, plan.generator_gpu_share) for i in range(plan.replicas)}
    roles["trainer"] = (plan.trainer_bundle, plan.trainer_gpu_share)
    actors = {role: Where.options(**workers._slot(*slot)).remote() for role, slot in roles.items()}
    placed = {role: ray.get(actor.where.remote(), timeout=60) for role, actor in actors.items()}
    # while this campaign holds its GPUs, a second one cannot reserve them
    try:
        CampaignWorkers(config.model_copy(update={"placement": config.placement.model_copy(
            update={"ready_timeout_s": 2})}), "unused", Path("unused"), "unused")  # fmt: skip
        second = "reserved"
    except PlacementError as error:
        second = str(error)
    workers.shutdown()
    print(json.dumps({"plan": plan.describe(), "placed": placed, "second": second}))


if __name__ == "__main__":
    main()
