"""Campaign drivers as named Ray actors, and the launch queue.

A driver is named after its campaign in the `cutloop` namespace, so any process connected
to the cluster (the API server, `cutloop run`) finds the one running a campaign and never
starts a second. Launched over the API, a driver is detached: it outlives the server that
started it. Launches wait in a queue kept in the store (status `queued`, by `queued_at`)
and start first come first served while the cluster has memory for them."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from cut.memory import GB
from orchestrator.config import CampaignConfig
from orchestrator.driver import LEASE, CampaignDriver, runner_is_gone
from orchestrator.placement import cluster_nodes, make_plan
from orchestrator.runtime import forwarded_environment, here
from store.campaigns import held_rounds, list_campaigns, queued_campaigns
from store.models import Campaign, utcnow

logger = logging.getLogger(__name__)

NAMESPACE = "cutloop"


def driver_name(campaign: str) -> str:
    return f"cutloop-driver-{campaign}"


def find_driver(campaign: str):
    """The live driver actor of `campaign` on the connected cluster, or None."""
    import ray

    try:
        return ray.get_actor(driver_name(campaign), namespace=NAMESPACE)
    except ValueError:
        return None


def driven_campaigns() -> set[str]:
    """Campaigns with a live driver on the connected cluster (one call to Ray's GCS)."""
    import ray.util

    prefix = driver_name("")
    return {
        entry["name"].removeprefix(prefix)
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry["namespace"] == NAMESPACE and entry["name"].startswith(prefix)
    }


def start_driver(config: CampaignConfig, database_url: str, home: str, detached: bool):
    """A named driver actor for the campaign; ValueError when one is already alive."""
    import ray

    return (
        ray.remote(CampaignDriver)
        .options(
            name=driver_name(config.name),
            namespace=NAMESPACE,
            lifetime="detached" if detached else None,
            num_cpus=0,
            scheduling_strategy=here(),  # the store's SQLite file and the judge cache: here
            max_concurrency=2,  # `progress` answers while `run` works
            runtime_env={"env_vars": forwarded_environment()},
        )
        .remote(config, database_url, home)
    )


def memory_requests(config: CampaignConfig) -> dict[str, float]:
    """GB the campaign's actors declare to Ray, by setting."""
    generator = config.generator
    return {
        f"generator.memory_gb × {generator.replicas} replicas": generator.memory_gb
        * generator.replicas,
        "trainer.memory_gb": config.trainer.memory_gb,
    }


def check_fits_cluster(config: CampaignConfig) -> list[str]:
    """The campaign's placement plan on this cluster, described; PlacementError (a
    ValueError) naming the setting when it could never run here, even alone (launching
    it would queue it for ever)."""
    return make_plan(config, cluster_nodes()).describe()


def is_running(session: Session, campaign: Campaign) -> bool:
    """A driver on this cluster runs it, or a runner that is not known to be gone holds
    one of its rounds under a live lease (e.g. `cutloop run` on another Ray)."""
    if find_driver(campaign.name) is not None:
        return True
    held = held_rounds(session, campaign.id, utcnow() - LEASE)
    return any(not runner_is_gone(r.claimed_by or "") for r in held)


def queue_positions(session: Session) -> dict[str, int]:
    """Place in the launch queue (1: next to start) of each queued campaign."""
    return {c.name: i for i, c in enumerate(queued_campaigns(session), start=1)}


def _demand_gb(campaign: Campaign) -> float:
    return sum(memory_requests(CampaignConfig.model_validate(campaign.config)).values())


def start_queued(sessions: sessionmaker[Session], database_url: str, home: str) -> list[str]:
    """Start queued campaigns in order while the cluster has room for all that run; the
    first that does not fit waits, and the ones behind it wait with it. Returns the
    names started."""
    import ray

    with sessions() as session:
        queue = queued_campaigns(session)
        if not queue:  # the usual answer: no call to Ray's GCS, no campaign's settings read
            return []
        campaigns = list_campaigns(session)
    capacity = ray.cluster_resources().get("memory", 0.0) / GB
    driven = driven_campaigns()
    committed = sum(_demand_gb(c) for c in campaigns if c.name in driven)
    started = []
    for campaign in queue:
        if campaign.name in driven:
            continue  # started a moment ago; its driver will mark it running
        demand = _demand_gb(campaign)
        if committed + demand > capacity:
            break
        config = CampaignConfig.model_validate(campaign.config)
        try:
            start_driver(config, database_url, home, detached=True).start.remote()
        except ValueError:  # another server started it between our look and now
            continue
        logger.info("started campaign %s (%.1f GB of %.1f GB)", campaign.name, demand, capacity)
        committed += demand
        started.append(campaign.name)
    return started
