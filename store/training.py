"""Training runs, their per-step metrics, flagged tokens and the checkpoints they make."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import StoreError, flush
from store.models import (
    Checkpoint,
    CheckpointKind,
    FlaggedTokens,
    TrainingRun,
    TrainingStep,
    utcnow,
)
from store.upsert import insert_or_verify


def start_training_run(
    session: Session, round_id: int, hyperparameters: dict[str, Any]
) -> TrainingRun:
    """The round's training run; a restarted round continues the same one."""
    run = session.scalar(select(TrainingRun).where(TrainingRun.round_id == round_id))
    if run is None:
        run = TrainingRun(round_id=round_id, hyperparameters=hyperparameters)
        session.add(run)
        flush(session, TrainingRun)
    elif run.hyperparameters != hyperparameters:
        raise StoreError(f"training_run.hyperparameters: round {round_id} trained with others")
    return run


def training_run_of(session: Session, round_id: int) -> TrainingRun:
    run = session.scalar(select(TrainingRun).where(TrainingRun.round_id == round_id))
    if run is None:
        raise StoreError(f"training_run.round_id: round {round_id} has no training run")
    return run


def add_training_steps(session: Session, run_id: int, steps: Sequence[dict[str, Any]]) -> list[int]:
    rows = [{"training_run_id": run_id, **step} for step in steps]
    return insert_or_verify(session, TrainingStep, rows, key=("training_run_id", "step"))


def add_flagged_tokens(session: Session, run_id: int, rows: Sequence[dict[str, Any]]) -> list[int]:
    """rows: {generation_id, positions, token_ids, ratios} per negative example."""
    full = [{"training_run_id": run_id, **row} for row in rows]
    return insert_or_verify(session, FlaggedTokens, full, key=("training_run_id", "generation_id"))


def add_checkpoint(
    session: Session,
    campaign_id: int,
    version: int,
    location: str,
    sha256: str,
    kind: CheckpointKind,
    parent_id: int | None = None,
) -> int:
    row = {
        "campaign_id": campaign_id, "version": version, "location": location,
        "sha256": sha256, "kind": kind, "parent_id": parent_id,
    }  # fmt: skip
    (checkpoint_id,) = insert_or_verify(session, Checkpoint, [row], key=("campaign_id", "version"))
    return checkpoint_id


def finish_training_run(session: Session, run: TrainingRun, checkpoint_id: int) -> None:
    run.checkpoint_id = checkpoint_id
    run.finished_at = utcnow()
    flush(session, TrainingRun)


def latest_checkpoint(session: Session, campaign_id: int) -> Checkpoint | None:
    return session.scalar(
        select(Checkpoint)
        .where(Checkpoint.campaign_id == campaign_id)
        .order_by(Checkpoint.version.desc())
        .limit(1)
    )


def checkpoint_of(session: Session, campaign_id: int, version: int) -> Checkpoint | None:
    """The campaign's checkpoint of `version`, if it was published."""
    return session.scalar(
        select(Checkpoint).where(
            Checkpoint.campaign_id == campaign_id, Checkpoint.version == version
        )
    )


def checkpoints_of(session: Session, campaign_id: int) -> list[Checkpoint]:
    """Every checkpoint the campaign published, by version."""
    query = select(Checkpoint).where(Checkpoint.campaign_id == campaign_id)
    return list(session.scalars(query.order_by(Checkpoint.version)))
