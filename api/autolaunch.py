"""The campaign a server launches when it starts (`cutloop serve --launch FILE`; in the
compose stack, $CAMPAIGN_CONFIG): stored on the first start and queued once; resumed
where the store says when the server restarts or its driver dies. It is never run twice
— not while a driver on the cluster, or a runner elsewhere under a live lease, holds it
— and nothing here overrides what the store records as decided: done, paused,
cancelled or failed."""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from api.state import ApiState
from orchestrator import lifecycle
from orchestrator.config import CampaignConfig
from orchestrator.launcher import check_fits_cluster, find_driver, is_running
from orchestrator.lifecycle import LifecycleError
from orchestrator.placement import PlacementError
from orchestrator.progress import stderr_console
from store.campaigns import campaign_by_name, queue_campaign
from store.models import CampaignStatus

logger = logging.getLogger(__name__)

DECIDED = {
    CampaignStatus.PAUSED: "paused; POST /api/v1/campaigns/{name}/resume to go on",
    CampaignStatus.CANCELLED: "cancelled",
    CampaignStatus.FAILED: "failed ({error}); POST /api/v1/campaigns/{name}/resume to retry",
}


class Verdict(enum.Enum):
    QUEUE = "queue"  # launch (or resume) it now
    WAIT = "wait"  # look again later: it runs, or the cluster is not ready for it
    LEAVE = "leave"  # the store records it as decided: nothing more to do


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str
    rounds: int = 0  # QUEUE: the rounds to run up to


def store_campaign(sessions: sessionmaker[Session], config: CampaignConfig) -> None:
    """Store the campaign unless it is; StateConflict when its name holds another one."""
    with sessions.begin() as session:
        lifecycle.store_campaign(session, config)


def decide(session: Session, config: CampaignConfig) -> Decision:
    """What a starting server does with its campaign, from the store and the cluster."""
    campaign = campaign_by_name(session, config.name)
    assert campaign is not None, "store_campaign first"
    stored_rounds = int(campaign.config.get("rounds", config.rounds))
    status = campaign.status
    if status == CampaignStatus.DONE:
        if config.rounds <= stored_rounds:
            return Decision(Verdict.LEAVE, f"done: all its {stored_rounds} rounds ran")
        more = config.rounds - stored_rounds
        return _if_it_fits(config, f"{more} more round(s) asked for", config.rounds)
    if status in DECIDED:
        reason = DECIDED[status].format(name=config.name, error=campaign.error)
        return Decision(Verdict.LEAVE, reason)
    if status == CampaignStatus.QUEUED:
        return Decision(Verdict.WAIT, "queued: it starts when the cluster has room")
    if find_driver(config.name) is not None:  # or one Ray has not yet seen die
        return Decision(Verdict.WAIT, "running on this cluster")
    if is_running(session, campaign):
        return Decision(Verdict.WAIT, "a runner elsewhere holds one of its rounds under a lease")
    rounds = max(config.rounds, stored_rounds)
    if status == CampaignStatus.PENDING:
        return _if_it_fits(config, "launching", rounds)
    return _if_it_fits(config, f"resuming: it was {status.value} and nothing runs it", rounds)


def _if_it_fits(config: CampaignConfig, reason: str, rounds: int) -> Decision:
    try:
        check_fits_cluster(config)
    except PlacementError as error:  # nodes may still be joining
        return Decision(Verdict.WAIT, f"waiting for the cluster: {error}")
    return Decision(Verdict.QUEUE, reason, rounds)


def _say(line: str) -> None:
    stderr_console.print(line, markup=False, highlight=False, soft_wrap=True)


def launch_on_start(state: ApiState, config: CampaignConfig) -> None:
    """Store the server's campaign, then queue it whenever it should run and nothing runs
    it, until the store records it as decided; look every poll_s seconds, saying what it
    does whenever that changes. Runs in a thread for the server's life."""
    try:
        store_campaign(state.sessions, config)
    except LifecycleError as error:
        _say(f"error: {error}")
        return
    said = ""
    while not state.stop.is_set():
        try:
            with state.sessions.begin() as session:
                decision = decide(session, config)
                if decision.verdict == Verdict.QUEUE:
                    found = campaign_by_name(session, config.name)
                    assert found is not None
                    queue_campaign(session, found, decision.rounds)
        except Exception:
            logger.exception("could not launch campaign %s; trying again", config.name)
            decision = Decision(Verdict.WAIT, "the store or the cluster failed (logged)")
        if decision.reason != said:
            _say(f"campaign {config.name}: {decision.reason}")
            said = decision.reason
        if decision.verdict == Verdict.LEAVE:
            return
        if decision.verdict == Verdict.QUEUE:
            state.wake.set()
        state.stop.wait(state.settings.poll_s)
