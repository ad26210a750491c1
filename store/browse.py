"""What the API browses: a round's stage timings, training steps and checkpoint; a page
of judgments; one answer with its judgments and flagged tokens; a campaign's checkpoints."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import RowMapping, Select, or_, select
from sqlalchemy.orm import Session

from store.models import (
    Campaign,
    Checkpoint,
    FlaggedTokens,
    Generation,
    Judgment,
    JudgmentStatus,
    Polarity,
    Prompt,
    Round,
    RoundStage,
    TrainingRun,
    TrainingStep,
)


def round_of(session: Session, campaign_id: int, index: int) -> Round | None:
    return session.scalar(
        select(Round).where(Round.campaign_id == campaign_id, Round.index == index)
    )


def round_named(session: Session, campaign: str, index: int) -> Round | None:
    return session.scalar(
        select(Round).join(Campaign).where(Campaign.name == campaign, Round.index == index)
    )


def stages_of(session: Session, round_id: int) -> list[RoundStage]:
    return list(
        session.scalars(
            select(RoundStage).where(RoundStage.round_id == round_id).order_by(RoundStage.id)
        )
    )


def training_of(session: Session, round_id: int) -> tuple[TrainingRun | None, list[TrainingStep]]:
    run = session.scalar(select(TrainingRun).where(TrainingRun.round_id == round_id))
    return run, list(run.steps) if run is not None else []


def checkpoints_of(session: Session, campaign_id: int) -> list[Checkpoint]:
    return list(
        session.scalars(
            select(Checkpoint)
            .where(Checkpoint.campaign_id == campaign_id)
            .order_by(Checkpoint.version)
        )
    )


@dataclass(frozen=True)
class JudgmentFilter:
    polarity: Polarity | None = None
    status: JudgmentStatus | None = None
    text: str | None = None  # contained in the judgment or the answer, any case


def _contains(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# a judgment as a page shows it, with its answer and instruction (the API's JudgmentOut)
PAGE_COLUMNS = (
    Judgment.id,
    Judgment.generation_id,
    Prompt.instruction,
    Generation.text.label("answer"),
    Generation.finish_reason,
    Judgment.judge_name,
    Judgment.judge_model,
    Judgment.status,
    Judgment.polarity,
    Judgment.text,
    Judgment.spans,
    Judgment.annotator,
    Judgment.error,
    Judgment.latency_s,
    Judgment.created_at,
)


def _shown_judgments() -> Select:
    """Judgments as PAGE_COLUMNS, each joined to its answer and instruction."""
    return (
        select(*PAGE_COLUMNS)
        .join(Generation, Generation.id == Judgment.generation_id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
    )


def judgments_page(
    session: Session, round_id: int, where: JudgmentFilter, after: int | None, limit: int
) -> list[RowMapping]:
    """Up to `limit` judgments of the round with ids above `after`, in id order (a stable
    cursor: rows written meanwhile land after it), as PAGE_COLUMNS: no ORM objects are
    built (they took most of a page's time)."""
    query = _shown_judgments().where(Generation.round_id == round_id)
    if where.polarity is not None:
        query = query.where(Judgment.polarity == where.polarity)
    if where.status is not None:
        query = query.where(Judgment.status == where.status)
    if where.text:
        pattern = _contains(where.text)
        query = query.where(
            or_(
                Judgment.text.ilike(pattern, escape="\\"),
                Judgment.error.ilike(pattern, escape="\\"),
                Generation.text.ilike(pattern, escape="\\"),
            )
        )
    if after is not None:
        query = query.where(Judgment.id > after)
    return list(session.execute(query.order_by(Judgment.id).limit(limit)).mappings())


@dataclass(frozen=True)
class Answer:
    generation: Generation
    prompt: Prompt
    round_index: int
    judgments: list[RowMapping]  # as PAGE_COLUMNS
    flagged: list[tuple[int, FlaggedTokens]]  # (round index of the training run, flags)


def answer_of(session: Session, campaign_id: int, generation_id: int) -> Answer | None:
    row = session.execute(
        select(Generation, Prompt, Round.index)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .join(Round, Round.id == Generation.round_id)
        .where(Generation.id == generation_id, Round.campaign_id == campaign_id)
    ).first()
    if row is None:
        return None
    generation, prompt, index = row
    judgments = session.execute(
        _shown_judgments().where(Judgment.generation_id == generation_id).order_by(Judgment.id)
    ).mappings()
    flagged = session.execute(
        select(Round.index, FlaggedTokens)
        .join(TrainingRun, TrainingRun.id == FlaggedTokens.training_run_id)
        .join(Round, Round.id == TrainingRun.round_id)
        .where(FlaggedTokens.generation_id == generation_id)
        .order_by(Round.index)
    )
    return Answer(generation, prompt, index, list(judgments), [tuple(r) for r in flagged])
