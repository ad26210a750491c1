"""Campaigns, rounds and the stage bookkeeping that makes resume possible."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from store.errors import StoreError, flush
from store.models import Campaign, CampaignStatus, Round, RoundStage, RoundStatus, Stage, utcnow

STAGE_ORDER = list(Stage)


def create_campaign(session: Session, name: str, config: dict[str, Any]) -> Campaign:
    """A new campaign; an existing one of that name must have the same config."""
    existing = campaign_by_name(session, name)
    if existing is not None:
        if existing.config != config:
            raise StoreError(f"campaign.config: campaign {name!r} exists with another config")
        return existing
    campaign = Campaign(name=name, config=config)
    session.add(campaign)
    flush(session, Campaign)
    return campaign


def fix_eval_set(session: Session, campaign: Campaign, sha256: str) -> None:
    """A campaign's eval set is fixed when it starts, so its rounds stay comparable."""
    if campaign.eval_set_sha256 is None:
        campaign.eval_set_sha256 = sha256
    elif campaign.eval_set_sha256 != sha256:
        raise StoreError(
            f"evaluation: campaign {campaign.name!r} started on an eval set with sha256 "
            f"{campaign.eval_set_sha256[:12]}…, the one given now has {sha256[:12]}…; restore "
            "that eval set or start a campaign under a new name"
        )


def campaign_by_name(session: Session, name: str) -> Campaign | None:
    return session.scalar(select(Campaign).where(Campaign.name == name))


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.id)))


def ensure_round(session: Session, campaign: Campaign, index: int) -> Round:
    existing = session.scalar(
        select(Round).where(Round.campaign_id == campaign.id, Round.index == index)
    )
    if existing is not None:
        return existing
    round_ = Round(campaign_id=campaign.id, index=index)
    session.add(round_)
    flush(session, Round)
    return round_


def claim_round(
    session: Session,
    round_id: int,
    worker: str,
    dead_holder: str | None = None,
    expired_before: datetime | None = None,
) -> bool:
    """Atomically make `worker` the round's runner; False when another already is.
    One conditional UPDATE: of two racing claimers exactly one sees a row change. A
    claim is taken over from `dead_holder` (known to be gone) or when it was last
    renewed before `expired_before` (its holder stopped renewing its lease)."""
    free = [Round.claimed_by.is_(None)]
    if dead_holder is not None:
        free.append(Round.claimed_by == dead_holder)
    if expired_before is not None:
        free.append(Round.claimed_at < expired_before)
    claimed = session.execute(
        update(Round)
        .where(Round.id == round_id, or_(*free))
        .values(
            claimed_by=worker,
            claimed_at=utcnow(),
            status=RoundStatus.RUNNING,
            error=None,
            error_detail=None,
        )
        .execution_options(synchronize_session=False)
    )
    return claimed.rowcount == 1


def renew_claim(session: Session, round_id: int, worker: str) -> bool:
    """Extend `worker`'s lease on the round; False when it no longer holds it."""
    renewed = session.execute(
        update(Round)
        .where(Round.id == round_id, Round.claimed_by == worker)
        .values(claimed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return renewed.rowcount == 1


def release_round(session: Session, round_id: int, worker: str) -> None:
    session.execute(
        update(Round)
        .where(Round.id == round_id, Round.claimed_by == worker)
        .values(claimed_by=None, claimed_at=None)
        .execution_options(synchronize_session=False)
    )


def start_stage(session: Session, round_: Round, stage: Stage) -> RoundStage:
    """Record that `stage` began (again, after a crash: the first start is kept)."""
    if round_.stage != stage:
        raise StoreError(f"round.stage: round {round_.id} is at {round_.stage}, not {stage}")
    record = session.scalar(
        select(RoundStage).where(RoundStage.round_id == round_.id, RoundStage.stage == stage)
    )
    if record is None:
        record = RoundStage(round_id=round_.id, stage=stage)
        session.add(record)
        flush(session, RoundStage)
    return record


def complete_stage(session: Session, round_: Round, stage: Stage) -> Stage:
    """Mark `stage` finished and move the round to the next one. Call it in the same
    transaction that writes the stage's results: then a crash either keeps both or
    neither, and a stage is never visible as complete without its results."""
    record = start_stage(session, round_, stage)
    record.finished_at = utcnow()
    following = STAGE_ORDER[STAGE_ORDER.index(stage) + 1]
    round_.stage = following
    if following == Stage.DONE:
        round_.status = RoundStatus.DONE
        round_.finished_at = utcnow()
    flush(session, Round)
    return following


def fail_round(session: Session, round_: Round, error: str, detail: str | None = None) -> None:
    round_.status = RoundStatus.FAILED
    round_.error = error
    round_.error_detail = detail
    round_.claimed_by = None
    flush(session, Round)


def set_campaign_status(session: Session, campaign_id: int, status: CampaignStatus) -> None:
    """A new status; `error` is cleared unless the campaign failed."""
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if status != CampaignStatus.FAILED:
        values["error"] = None
    session.execute(
        update(Campaign)
        .where(Campaign.id == campaign_id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )


def fail_campaign(session: Session, campaign: Campaign, error: str) -> None:
    """The campaign could not run (e.g. refused at its start): failed, with the reason."""
    campaign.status = CampaignStatus.FAILED
    campaign.error = error
    flush(session, Campaign)


def campaign_status(session: Session, campaign_id: int) -> CampaignStatus:
    """Read fresh from the database: another process may have paused or cancelled it."""
    status = session.scalar(select(Campaign.status).where(Campaign.id == campaign_id))
    if status is None:
        raise StoreError(f"campaign.id: no campaign {campaign_id}")
    return status


def queue_campaign(session: Session, campaign: Campaign, rounds: int) -> None:
    """Put the campaign at the end of the launch queue, to run up to `rounds` rounds."""
    campaign.config = {**campaign.config, "rounds": rounds}
    campaign.status = CampaignStatus.QUEUED
    campaign.error = None
    campaign.queued_at = utcnow()
    flush(session, Campaign)


def queued_campaigns(session: Session) -> list[Campaign]:
    """The launch queue, first come first served."""
    return list(
        session.scalars(
            select(Campaign)
            .where(Campaign.status == CampaignStatus.QUEUED)
            .order_by(Campaign.queued_at, Campaign.id)
        )
    )


def held_rounds(session: Session, campaign_id: int, fresher_than: datetime) -> list[Round]:
    """Rounds of the campaign a runner holds under a lease renewed after `fresher_than`."""
    return list(
        session.scalars(
            select(Round).where(
                Round.campaign_id == campaign_id,
                Round.claimed_by.is_not(None),
                Round.claimed_at >= fresher_than,
            )
        )
    )
