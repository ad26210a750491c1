"""Ray for a campaign: connect (a local Ray started on demand, or `ray_address`) and the
campaign's workers — generator replicas, a judge worker and the trainer — started when
first needed and placed by their resource needs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from cut.memory import GB
from orchestrator.config import CampaignConfig
from orchestrator.instructions import verifiable_instructions
from orchestrator.judging import make_annotator, make_judge, model_judge
from orchestrator.placement import PlacementError, Plan, cluster_nodes, make_plan
from workers.engine import EngineConfig

logger = logging.getLogger(__name__)

FORWARDED_ENV = ("CUTLOOP_HOME", "CUTLOOP_DATABASE_URL", "CUTLOOP_FAILPOINT",
                 "CUTLOOP_FAILPOINT_MARKER", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "HF_TOKEN", "WANDB_MODE", "WANDB_API_KEY", "MLFLOW_TRACKING_URI")  # fmt: skip


def forwarded_environment() -> dict[str, str]:
    """cutloop's own settings, the Hugging Face token (gated models load on every node)
    and the trackers' settings (the driver reports to them), for actors on machines that
    did not inherit this process's environment. The judge's API keys are not forwarded:
    the judge runs beside the driver."""
    return {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}


def all_cores_environment() -> dict[str, str]:
    """For actors that compute on the CPU while the generators idle (Ray gives an actor
    without CPU slots OMP_NUM_THREADS=1)."""
    return {**forwarded_environment(), "OMP_NUM_THREADS": str(os.cpu_count() or 1)}


def connect(address: str | None, verbose: bool = False) -> None:
    """Join `address`, else $RAY_ADDRESS (set in a `ray job submit` job), else start a
    local Ray for this process."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster needs no token
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=verbose)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=verbose)


def memory_bytes(gb: float) -> int:
    return int(gb * GB)


def here():
    """A scheduling strategy that keeps an actor on this process's node: the driver, the
    store's SQLite file and the judge cache stay where the campaign was launched."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)


class CampaignWorkers:
    """The actors of one campaign, started lazily: a resumed run that only trains never
    starts a generator, a run that only evaluates never starts the trainer. Where they
    run is the campaign's placement plan, fixed (and its GPUs reserved) at start."""

    def __init__(
        self, config: CampaignConfig, policy: str, campaign_dir: Path, identity: str
    ) -> None:
        self.config = config
        self.policy = policy
        self.campaign_dir = campaign_dir  # on the driver's node: the judge cache's home
        self.identity = identity  # which stored campaign the trainer's files belong to
        self.plan = make_plan(config, cluster_nodes())
        self._group = reserve(self.plan, config.placement.ready_timeout_s)
        self._generators: list | None = None
        self._served: int | None = 0  # version the generators serve (None: unknown)
        self._judge = None
        self._trainer = None
        self._annotator = None

    def _slot(self, bundle: int, gpus: float) -> dict:
        """Ray options placing an actor in `bundle` of the plan's placement group."""
        if self._group is None:
            return {}
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        strategy = PlacementGroupSchedulingStrategy(self._group, bundle)
        return {"num_gpus": gpus, "scheduling_strategy": strategy}

    def generators(self) -> list:
        if self._generators is None:
            from workers.placement import start_generators

            generator = self.config.generator
            settings = generator.model_dump(exclude={"replicas", "sampling", "memory_gb"})
            settings["sleep_mode"] = self.plan.colocate
            engine = EngineConfig(model=self.policy, **settings)
            self._generators = start_generators(
                engine, [self._slot(i, self.plan.generator_gpu_share)
                         for i in range(generator.replicas)],
                forwarded_environment(), memory_bytes(generator.memory_gb),
            )  # fmt: skip
        return self._generators

    def serve(self, version: int, location: str) -> None:
        """Make every generator serve `version`, sent from the trainer (which holds the
        checkpoint on its node) through Ray's object store: a LoRA round's factors when
        the generators serve the weights it was trained on, else the whole model."""
        from cut.modeling import lora_targets_at
        from workers.engine import SwapError
        from workers.placement import send_delta, send_weights

        generators = self.generators()
        if self._served == version:
            return
        served, self._served = self._served, None  # unknown until a swap succeeds
        cut = self.config.cut
        if cut.finetuning == "lora" and served is not None and served < version:
            try:
                send_delta(generators, self.trainer(), location, version)
                self._served = version
                return
            except SwapError as refused:
                logger.info("v%d sent whole: %s", version, refused)
        # the layers LoRA adapts: the generators keep their weights to merge deltas into
        keep = lora_targets_at(self.policy, cut) if cut.finetuning == "lora" else ()
        send_weights(generators, self.trainer(), location, version, keep)
        self._served = version

    @contextmanager
    def training(self) -> Iterator[None]:
        """While the trainer works on a GPU it shares, the engine sleeps (weights to host
        memory, KV cache freed) and wakes after."""
        sleeping = self.plan.colocate and self._generators is not None
        if sleeping:
            import ray

            ray.get([g.sleep.remote() for g in self._generators])
        try:
            yield
        finally:
            if sleeping:
                ray.get([g.wake_up.remote() for g in self._generators])

    def judge(self):
        if self._judge is None:
            import ray

            from workers.judge_worker import JudgeWorker

            settings = model_judge(self.config.judge)
            if settings is None:
                raise RuntimeError("people write every judgment: there is no judge worker")
            known = verifiable_instructions(self.config)
            build: Callable = partial(make_judge, settings, self.campaign_dir, known)
            self._judge = (
                ray.remote(JudgeWorker)
                .options(
                    num_cpus=0,
                    scheduling_strategy=here(),  # its cache is the driver's node's
                    runtime_env={"env_vars": all_cores_environment()},
                )
                .remote(build)
            )
        return self._judge

    def annotator(self):
        """Pairwise annotators are light (rule checks or HTTP calls): they run here."""
        if self._annotator is None:
            known = verifiable_instructions(self.config)
            self._annotator = make_annotator(self.config.evaluation, self.campaign_dir, known)
        return self._annotator

    def trainer(self):
        if self._trainer is None:
            import ray

            from workers.trainer import Trainer

            self._trainer = (
                ray.remote(Trainer)
                .options(
                    num_cpus=0,
                    memory=memory_bytes(self.config.trainer.memory_gb),
                    max_concurrency=2,  # `progress` answers while `train` runs
                    runtime_env={"env_vars": all_cores_environment()},
                    **self._slot(self.plan.trainer_bundle, self.plan.trainer_gpu_share),
                )
                .remote()
            )
            self._wait_for_trainer()
        return self._trainer

    def _wait_for_trainer(self) -> None:
        """The trainer's constructor is trivial: when its first call does not answer
        within placement.ready_timeout_s, Ray cannot place it (something took the memory
        since the plan was checked); fail instead of waiting for ever."""
        import ray
        from ray.exceptions import GetTimeoutError

        timeout = self.config.placement.ready_timeout_s
        try:
            ray.get(self._trainer.progress.remote(), timeout=timeout)
        except GetTimeoutError:
            ray.kill(self._trainer)
            self._trainer = None
            raise PlacementError(
                f"the trainer was not scheduled in {timeout:g} s (placement.ready_timeout_s): "
                f"no Ray node has trainer.memory_gb={self.config.trainer.memory_gb:g} free"
            ) from None

    def shutdown(self) -> None:
        import ray

        for actor in [*(self._generators or []), self._judge, self._trainer]:
            if actor is not None:
                ray.kill(actor)
        self._generators, self._judge, self._trainer = None, None, None
        if self._group is not None:
            from ray.util.placement_group import remove_placement_group

            remove_placement_group(self._group)
            self._group = None


def reserve(plan: Plan, timeout_s: float):
    """The plan's placement group, reserved; None on a CPU plan. PlacementError when Ray
    cannot reserve it in time (the GPUs are taken by something else)."""
    if not plan.gpus:
        return None
    import ray
    from ray.util.placement_group import placement_group, remove_placement_group

    group = placement_group(list(plan.bundles), strategy="PACK")
    ready, _ = ray.wait([group.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(group)
        raise PlacementError(
            f"Ray did not reserve the campaign's {len(plan.bundles)} GPU bundle(s) in "
            f"{timeout_s:g} s (placement.ready_timeout_s): other work holds the GPUs"
        )
    return group
