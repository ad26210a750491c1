"""A campaign's lifecycle: the one set of rules that `cutloop run`/`pause`/`cancel`, the
API and the driver follow. Which stored campaign a config is, and which states may be
launched, resumed, paused or cancelled. A refusal is a LifecycleError whose message is
the line the user sees; the functions take a session and never commit."""

from __future__ import annotations

from sqlalchemy.orm import Session

from orchestrator.config import CampaignConfig, same_campaign
from store.campaigns import campaign_by_name, create_campaign, set_campaign_status
from store.models import Campaign, CampaignStatus

# What pause and cancel may stop: a campaign still to run, or running. Cancel also ends
# one that was never launched, was paused or failed; a finished one has nothing to stop.
PAUSABLE = frozenset({CampaignStatus.RUNNING, CampaignStatus.QUEUED})
CANCELLABLE = PAUSABLE | {CampaignStatus.PENDING, CampaignStatus.PAUSED, CampaignStatus.FAILED}


class LifecycleError(Exception):
    """A request the campaign's name or state refuses."""


class UnknownCampaign(LifecycleError):
    pass


class StateConflict(LifecycleError):
    pass


def named(session: Session, name: str) -> Campaign:
    campaign = campaign_by_name(session, name)
    if campaign is None:
        raise UnknownCampaign(f"no campaign named {name!r}")
    return campaign


def store_campaign(session: Session, config: CampaignConfig) -> tuple[Campaign, bool]:
    """The campaign the config names, created when new (True). The same settings with
    another number of rounds are the same campaign, its stored rounds unchanged (defaults
    added since it was stored count as given); any other difference is refused."""
    settings = config.model_dump(mode="json", by_alias=True)
    existing = campaign_by_name(session, config.name)
    if existing is None:
        return create_campaign(session, config.name, settings), True
    if not same_campaign(existing.config, settings):
        raise StateConflict(
            f"campaign {config.name!r} is stored with other settings; give this config "
            "another name or restore the stored settings"
        )
    return existing, False


def check_launch(campaign: Campaign, extra_rounds: int, running: bool) -> CampaignConfig:
    """The stored config to launch with `extra_rounds` more rounds; `running`: a driver
    or a live lease holds the campaign now."""
    status = campaign.status
    if status == CampaignStatus.CANCELLED:
        raise StateConflict(f"campaign {campaign.name!r} was cancelled; create a new one")
    if status == CampaignStatus.QUEUED:
        raise StateConflict(f"campaign {campaign.name!r} is already queued")
    if running:
        raise StateConflict(f"campaign {campaign.name!r} is running")
    config = CampaignConfig.model_validate(campaign.config)
    if status == CampaignStatus.DONE and extra_rounds == 0:
        raise StateConflict(
            f"campaign {campaign.name!r} ran all its {config.rounds} rounds; launch it with "
            "extra rounds to go on"
        )
    return config


def request_stop(session: Session, campaign: Campaign, wanted: CampaignStatus) -> None:
    """Ask the campaign to pause or cancel: its driver stops after the current batch, a
    queued campaign leaves the queue."""
    allowed = PAUSABLE if wanted == CampaignStatus.PAUSED else CANCELLABLE
    if campaign.status not in allowed:
        verb = "paused" if wanted == CampaignStatus.PAUSED else "cancelled"
        raise StateConflict(
            f"campaign {campaign.name!r} is {campaign.status.value} and cannot be {verb}"
        )
    set_campaign_status(session, campaign.id, wanted)
