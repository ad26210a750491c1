"""Counts for the Prometheus endpoint, read from the store at scrape time: the store is
the record, so every API replica and restart reports the same numbers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Campaign, Generation, Judgment, Round, RoundStage


@dataclass(frozen=True)
class StageTotals:
    campaign: str
    stage: str
    count: int  # finished stages
    seconds: float  # their durations, summed


def campaigns_by_status(session: Session) -> Iterator[tuple[str, int]]:
    yield from session.execute(select(Campaign.status, func.count()).group_by(Campaign.status))


def rounds_by_status(session: Session) -> Iterator[tuple[str, str, int]]:
    yield from session.execute(
        select(Campaign.name, Round.status, func.count())
        .join(Campaign, Campaign.id == Round.campaign_id)
        .group_by(Campaign.name, Round.status)
    )


def stage_totals(session: Session) -> list[StageTotals]:
    totals: dict[tuple[str, str], list[float]] = {}
    rows = session.execute(
        select(Campaign.name, RoundStage.stage, RoundStage.started_at, RoundStage.finished_at)
        .join(Round, Round.id == RoundStage.round_id)
        .join(Campaign, Campaign.id == Round.campaign_id)
        .where(RoundStage.finished_at.is_not(None))
    )
    for name, stage, started, finished in rows:
        totals.setdefault((name, stage.value), []).append((finished - started).total_seconds())
    return [StageTotals(n, s, len(d), sum(d)) for (n, s), d in sorted(totals.items())]


def judge_calls(session: Session) -> Iterator[tuple[str, str, int]]:
    """(campaign, status, count) of recorded judge calls: ok judgments and failures."""
    yield from session.execute(
        select(Campaign.name, Judgment.status, func.count())
        .join(Generation, Generation.id == Judgment.generation_id)
        .join(Round, Round.id == Generation.round_id)
        .join(Campaign, Campaign.id == Round.campaign_id)
        .group_by(Campaign.name, Judgment.status)
    )


def generated_tokens(session: Session) -> Iterator[tuple[str, int, int]]:
    """(campaign, answers, completion tokens) generated for training rounds."""
    yield from session.execute(
        select(
            Campaign.name, func.count(), func.coalesce(func.sum(Generation.completion_tokens), 0)
        )
        .join(Round, Round.id == Generation.round_id)
        .join(Campaign, Campaign.id == Round.campaign_id)
        .group_by(Campaign.name)
    )
