"""Ray for a campaign: connect (a local Ray started on demand, or `ray_address`) and the
campaign's workers — generator replicas, a judge worker and the trainer — started when
first needed and placed by their resource needs."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from pathlib import Path

from cut.memory import GB
from orchestrator.config import CampaignConfig
from orchestrator.judging import make_annotator, make_judge
from workers.engine import EngineConfig

FORWARDED_ENV = ("CUTLOOP_HOME", "CUTLOOP_DATABASE_URL", "CUTLOOP_FAILPOINT",
                 "CUTLOOP_FAILPOINT_MARKER", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # fmt: skip


def forwarded_environment() -> dict[str, str]:
    """cutloop's own settings, for actors on machines that did not inherit this
    process's environment (API keys are not forwarded: set them on the cluster)."""
    return {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}


def all_cores_environment() -> dict[str, str]:
    """For actors that compute on the CPU while the generators idle (Ray gives an actor
    without CPU slots OMP_NUM_THREADS=1)."""
    return {**forwarded_environment(), "OMP_NUM_THREADS": str(os.cpu_count() or 1)}


def connect(address: str | None, verbose: bool = False) -> None:
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster needs no token
    if address:
        ray.init(address=address, log_to_driver=verbose)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=verbose)


def join_cluster(address: str | None) -> None:
    """Join the Ray cluster at `address`, else the one running on this machine, else start
    one with `ray start --head`: a cluster that outlives this process, so the campaigns a
    server launched keep running when it restarts."""
    import subprocess
    import sys

    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        ray.init(address=address or "auto", log_to_driver=False)
        return
    except ConnectionError:
        if address:
            raise
    ray_cli = Path(sys.executable).with_name("ray")
    subprocess.run(
        [str(ray_cli), "start", "--head", f"--num-cpus={os.cpu_count()}", "--disable-usage-stats",
         "--include-dashboard=false"],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    ray.init(address="auto", log_to_driver=False)


def memory_bytes(gb: float) -> int:
    return int(gb * GB)


def check_memory_fits(requests: dict[str, float]) -> None:
    """Refuse actors Ray could not place (it would keep them pending for ever): each
    request, in GB by setting name, against the largest node's memory resource, and all
    of them together (they run at the same time) against the cluster's."""
    import ray

    nodes = [n["Resources"].get("memory", 0.0) for n in ray.nodes() if n["Alive"]]
    largest, total = max(nodes, default=0.0), sum(nodes)
    for setting, gb in requests.items():
        if memory_bytes(gb) > largest:
            raise ValueError(
                f"{setting}={gb:g} is more than any Ray node offers ({largest / GB:.1f} GB "
                f"of memory resource): lower it, or run on a node with more memory"
            )
    if memory_bytes(sum(requests.values())) > total:
        asked = " + ".join(f"{setting}={gb:g}" for setting, gb in requests.items())
        raise ValueError(
            f"{asked} is more than the Ray cluster offers ({total / GB:.1f} GB of memory "
            f"resource): lower them, or add memory"
        )


def gpu_shares(total_gpus: float, replicas: int) -> tuple[float, float]:
    """(GPUs per generator replica, GPUs for the trainer): a GPU each when there are
    enough, else the GPUs split evenly between all of them; none on a CPU cluster."""
    if total_gpus <= 0:
        return 0.0, 0.0
    if total_gpus >= replicas + 1:
        return 1.0, 1.0
    share = total_gpus / (replicas + 1)
    return share, share


class CampaignWorkers:
    """The actors of one campaign, started lazily: a resumed run that only trains never
    starts a generator, a run that only evaluates never starts the trainer."""

    def __init__(self, config: CampaignConfig, policy: str, campaign_dir: Path) -> None:
        import ray

        self.config = config
        self.policy = policy
        self.campaign_dir = campaign_dir
        gpus = ray.cluster_resources().get("GPU", 0.0)
        self.generator_gpus, self.trainer_gpus = gpu_shares(gpus, config.generator.replicas)
        check_memory_fits(
            {
                "generator.memory_gb": config.generator.memory_gb,
                "trainer.memory_gb": config.trainer.memory_gb,
            }
        )
        self._generators: list | None = None
        self._served: int = 0  # version the generators serve (0: the starting policy)
        self._judge = None
        self._trainer = None
        self._annotator = None

    def generators(self) -> list:
        if self._generators is None:
            from workers.placement import start_generators

            generator = self.config.generator
            settings = generator.model_dump(exclude={"replicas", "sampling", "memory_gb"})
            engine = EngineConfig(model=self.policy, **settings)
            self._generators = start_generators(
                engine, generator.replicas, self.generator_gpus, forwarded_environment(),
                memory_bytes(generator.memory_gb),
            )  # fmt: skip
        return self._generators

    def serve(self, version: int, location: str) -> None:
        """Make every generator serve `version` (weights at `location`), hot-swapping."""
        from workers.placement import swap_all

        generators = self.generators()
        if self._served != version:
            swap_all(generators, location, version)
            self._served = version

    def judge(self):
        if self._judge is None:
            import ray

            from workers.judge_worker import JudgeWorker

            build: Callable = partial(make_judge, self.config.judge, self.campaign_dir)
            self._judge = (
                ray.remote(JudgeWorker)
                .options(num_cpus=0, runtime_env={"env_vars": all_cores_environment()})
                .remote(build)
            )
        return self._judge

    def annotator(self):
        """Pairwise annotators are light (rule checks or HTTP calls): they run here."""
        if self._annotator is None:
            self._annotator = make_annotator(self.config.evaluation, self.campaign_dir)
        return self._annotator

    def trainer(self):
        if self._trainer is None:
            import ray

            from workers.trainer import Trainer

            self._trainer = (
                ray.remote(Trainer)
                .options(
                    num_cpus=0,
                    num_gpus=self.trainer_gpus,
                    memory=memory_bytes(self.config.trainer.memory_gb),
                    max_concurrency=2,  # `progress` answers while `train` runs
                    runtime_env={"env_vars": all_cores_environment()},
                )
                .remote()
            )
        return self._trainer

    def shutdown(self) -> None:
        import ray

        for actor in [*(self._generators or []), self._judge, self._trainer]:
            if actor is not None:
                ray.kill(actor)
        self._generators, self._judge, self._trainer = None, None, None
