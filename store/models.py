"""Typed ORM models of everything a campaign produces.

Uniqueness rules make resume idempotent: one generation per (round, prompt, sample),
one *ok* judgment per (generation, judge), one eval item per (eval run, instruction).
Long texts that take part in a uniqueness rule are keyed by their sha256.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cut.examples import Polarity
from judge.base import JudgmentStatus

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes: they were stored in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


def _enum(cls: type[enum.Enum]) -> Enum:
    """Stored as its string value, checked by a named constraint on every engine."""
    return Enum(cls, values_callable=lambda e: [m.value for m in e], native_enum=False,
                create_constraint=True, length=16, name=cls.__name__.lower())  # fmt: skip


class CampaignStatus(enum.StrEnum):
    PENDING = "pending"
    QUEUED = "queued"  # launched, waiting for room on the cluster
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    FAILED = "failed"
    DONE = "done"


class RoundStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    FAILED = "failed"
    DONE = "done"


class Stage(enum.StrEnum):
    """A round's stages in order; `Round.stage` is the next one to run."""

    SAMPLE = "sample"
    GENERATE = "generate"
    JUDGE = "judge"
    BUILD = "build"
    TRAIN = "train"
    PUBLISH = "publish"
    SWAP = "swap"
    EVALUATE = "evaluate"
    DONE = "done"


class Split(enum.StrEnum):
    TRAIN = "train"
    EVAL = "eval"


class TaskOutcome(enum.StrEnum):
    """How a judging task ended; NULL while it is open."""

    JUDGED = "judged"  # a person wrote the judgment
    ACCEPTED = "accepted"  # a person approved the model judge's draft unchanged
    EDITED = "edited"  # a person changed the draft: the judgment is theirs
    REJECTED = "rejected"  # a person threw the draft away: nothing to train on
    EXPIRED = "expired"  # still open when the round moved on (deadline or quota)


class CheckpointKind(enum.StrEnum):
    FULL = "full"
    LORA = "lora"


class Campaign(Base):
    __tablename__ = "campaign"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]]
    # sha256 of the evaluation set, fixed when the campaign starts: rounds stay comparable
    eval_set_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[CampaignStatus] = mapped_column(
        _enum(CampaignStatus), default=CampaignStatus.PENDING
    )
    queued_at: Mapped[datetime | None]  # when it was last launched: its place in the queue
    error: Mapped[str | None] = mapped_column(Text)  # why it failed, when not a round's fault
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    rounds: Mapped[list[Round]] = relationship(back_populates="campaign", order_by="Round.index")
    prompts: Mapped[list[Prompt]] = relationship(back_populates="campaign")


class Round(Base):
    __tablename__ = "round"
    __table_args__ = (
        UniqueConstraint("campaign_id", "index"),
        CheckConstraint('"index" >= 0', name="index_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    index: Mapped[int]
    status: Mapped[RoundStatus] = mapped_column(_enum(RoundStatus), default=RoundStatus.PENDING)
    stage: Mapped[Stage] = mapped_column(_enum(Stage), default=Stage.SAMPLE)
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # the orchestrator running it
    claimed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)  # one line, for tables
    error_detail: Mapped[str | None] = mapped_column(Text)  # the whole message and traceback
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    campaign: Mapped[Campaign] = relationship(back_populates="rounds")
    stages: Mapped[list[RoundStage]] = relationship(
        back_populates="round", order_by="RoundStage.id"
    )
    generations: Mapped[list[Generation]] = relationship(back_populates="round")


class RoundStage(Base):
    """When each stage of a round started and finished. A stage is complete only when
    `finished_at` is set, in the same transaction as the stage's results."""

    __tablename__ = "round_stage"
    __table_args__ = (UniqueConstraint("round_id", "stage"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("round.id", ondelete="CASCADE"))
    stage: Mapped[Stage] = mapped_column(_enum(Stage))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    round: Mapped[Round] = relationship(back_populates="stages")


class Prompt(Base):
    __tablename__ = "prompt"
    __table_args__ = (UniqueConstraint("campaign_id", "split", "instruction_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    instruction: Mapped[str] = mapped_column(Text)
    instruction_sha256: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(200))
    split: Mapped[Split] = mapped_column(_enum(Split))
    reference_output: Mapped[str | None] = mapped_column(Text)  # eval sets with references
    used_in_round_id: Mapped[int | None] = mapped_column(
        ForeignKey("round.id", ondelete="SET NULL")
    )

    campaign: Mapped[Campaign] = relationship(back_populates="prompts")


class Generation(Base):
    __tablename__ = "generation"
    __table_args__ = (
        UniqueConstraint("round_id", "prompt_id", "sample_index"),
        CheckConstraint("sample_index >= 0", name="sample_index_not_negative"),
        CheckConstraint("policy_version >= 0", name="policy_version_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("round.id", ondelete="CASCADE"))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompt.id", ondelete="CASCADE"))
    sample_index: Mapped[int] = mapped_column(default=0)
    policy_version: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    finish_reason: Mapped[str] = mapped_column(String(32))
    sampling: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    round: Mapped[Round] = relationship(back_populates="generations")
    judgments: Mapped[list[Judgment]] = relationship(back_populates="generation")


class Judgment(Base):
    """A judge's verdict on a generation, or the record of a failed judge call (never
    trained on). Only one ok judgment per (generation, judge); failures may repeat."""

    __tablename__ = "judgment"
    __table_args__ = (
        Index(
            "uq_judgment_ok_per_judge",
            "generation_id",
            "judge_name",
            unique=True,
            sqlite_where=text("status = 'ok'"),
            postgresql_where=text("status = 'ok'"),
        ),
        CheckConstraint(
            "(status = 'ok' AND text IS NOT NULL AND polarity IS NOT NULL) OR "
            "(status = 'failed' AND error IS NOT NULL)",
            name="ok_has_text_failed_has_error",
        ),
        CheckConstraint("latency_s IS NULL OR latency_s >= 0", name="latency_not_negative"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id", ondelete="CASCADE"))
    judge_name: Mapped[str] = mapped_column(String(100))
    judge_model: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[JudgmentStatus] = mapped_column(_enum(JudgmentStatus))
    text: Mapped[str | None] = mapped_column(Text)
    polarity: Mapped[Polarity | None] = mapped_column(_enum(Polarity))
    error: Mapped[str | None] = mapped_column(Text)
    # [[start, end], ...] characters of the answer the judgment faults; [] none located,
    # NULL for judgments stored before spans existed (cut/spans.py)
    spans: Mapped[list[Any] | None]
    # the person who wrote or approved it (judges kind human and review); NULL for a
    # model or rule judge's own judgment
    annotator: Mapped[str | None] = mapped_column(String(100))
    latency_s: Mapped[float | None]
    tokens_in: Mapped[int | None]
    tokens_out: Mapped[int | None]
    cost_usd: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    generation: Mapped[Generation] = relationship(back_populates="judgments")


class Annotator(Base):
    """A person who judges answers in the dashboard or over the API. Only the token's
    sha256 is stored: the token is shown once, when the annotator is added."""

    __tablename__ = "annotator"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class JudgingTask(Base):
    """One answer waiting for a person's judgment (judges kind human and review). An
    annotator holds it under a lease while judging; a task given up or whose lease ran
    out is open again. `draft` is the model judge's judgment to review, if any."""

    __tablename__ = "judging_task"
    __table_args__ = (
        Index("ix_judging_task_round_open", "round_id", "outcome"),
        CheckConstraint("skips >= 0", name="skips_not_negative"),
        CheckConstraint("(outcome IS NULL) = (done_at IS NULL)", name="done_iff_outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("round.id", ondelete="CASCADE"))
    generation_id: Mapped[int] = mapped_column(
        ForeignKey("generation.id", ondelete="CASCADE"), unique=True
    )
    # {judge_name, judge_model, text, polarity, spans}: what the model judge wrote
    draft: Mapped[dict[str, Any] | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    skips: Mapped[int] = mapped_column(default=0)
    outcome: Mapped[TaskOutcome | None] = mapped_column(_enum(TaskOutcome))
    done_by: Mapped[str | None] = mapped_column(String(100))
    done_at: Mapped[datetime | None]
    judgment_id: Mapped[int | None] = mapped_column(ForeignKey("judgment.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Checkpoint(Base):
    __tablename__ = "checkpoint"
    __table_args__ = (UniqueConstraint("campaign_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaign.id", ondelete="CASCADE"))
    version: Mapped[int]
    location: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoint.id"))
    kind: Mapped[CheckpointKind] = mapped_column(_enum(CheckpointKind))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    parent: Mapped[Checkpoint | None] = relationship(remote_side=[id])


class TrainingRun(Base):
    __tablename__ = "training_run"

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("round.id", ondelete="CASCADE"), unique=True)
    hyperparameters: Mapped[dict[str, Any]]
    checkpoint_id: Mapped[int | None] = mapped_column(ForeignKey("checkpoint.id"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    steps: Mapped[list[TrainingStep]] = relationship(order_by="TrainingStep.step")
    checkpoint: Mapped[Checkpoint | None] = relationship()


class TrainingStep(Base):
    __tablename__ = "training_step"
    __table_args__ = (UniqueConstraint("training_run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"))
    step: Mapped[int]
    loss: Mapped[float]
    mle_loss: Mapped[float]
    unlikelihood_loss: Mapped[float]
    n_flagged: Mapped[int]
    flagged_fraction: Mapped[float]
    tokens_per_s: Mapped[float]
    learning_rate: Mapped[float]
    grad_norm: Mapped[float]


class FlaggedTokens(Base):
    """Which response tokens of one negative example CUT flagged, stored compactly."""

    __tablename__ = "flagged_tokens"
    __table_args__ = (UniqueConstraint("training_run_id", "generation_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    training_run_id: Mapped[int] = mapped_column(ForeignKey("training_run.id", ondelete="CASCADE"))
    generation_id: Mapped[int] = mapped_column(ForeignKey("generation.id", ondelete="CASCADE"))
    positions: Mapped[list[Any]]
    token_ids: Mapped[list[Any]]
    ratios: Mapped[list[Any]]


class EvalRun(Base):
    __tablename__ = "eval_run"
    __table_args__ = (
        UniqueConstraint("round_id", "eval_set", "annotator"),
        CheckConstraint(
            "win_rate IS NULL OR (win_rate >= 0 AND win_rate <= 100)", name="win_rate_range"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("round.id", ondelete="CASCADE"))
    eval_set: Mapped[str] = mapped_column(String(200))
    annotator: Mapped[str] = mapped_column(String(200))
    annotator_version: Mapped[str | None] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(200))  # who wrote the reference outputs
    # AlpacaEval's metrics (alpaca_eval.metrics), in percent
    win_rate: Mapped[float | None]
    standard_error: Mapped[float | None]
    discrete_win_rate: Mapped[float | None]  # each preference rounded to win/tie/loss
    lc_win_rate: Mapped[float | None]  # length-controlled
    lc_standard_error: Mapped[float | None]
    lc_glm: Mapped[str | None] = mapped_column(String(64))  # the GLM that controlled length
    lc_missing: Mapped[str | None] = mapped_column(Text)  # why no lc_win_rate
    n: Mapped[int | None]  # items with a preference
    ties: Mapped[int | None]
    failed: Mapped[int | None]  # items the annotator could not decide (not in n)
    avg_length: Mapped[float | None]
    decisive_win_rate: Mapped[float | None]  # wins / (wins + losses), percent; ties left out
    # IFEval accuracies in percent, over the items whose constraints are known
    prompt_strict: Mapped[float | None]
    prompt_loose: Mapped[float | None]
    instruction_strict: Mapped[float | None]
    instruction_loose: Mapped[float | None]
    truncated: Mapped[float | None]  # percent of answers cut off at max_new_tokens
    # exact McNemar test of prompt-level strict against round 0's items (NULL in round 0)
    mcnemar_b: Mapped[int | None]  # round 0 failed, this round passes
    mcnemar_c: Mapped[int | None]  # round 0 passed, this round fails
    mcnemar_p: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]

    items: Mapped[list[EvalItem]] = relationship(back_populates="eval_run")


class EvalItem(Base):
    __tablename__ = "eval_item"
    __table_args__ = (UniqueConstraint("eval_run_id", "instruction_sha256"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    eval_run_id: Mapped[int] = mapped_column(ForeignKey("eval_run.id", ondelete="CASCADE"))
    instruction: Mapped[str] = mapped_column(Text)
    instruction_sha256: Mapped[str] = mapped_column(String(64))
    position: Mapped[int | None]  # in the eval set
    dataset: Mapped[str | None] = mapped_column(String(100))  # the eval set's source dataset
    output: Mapped[str] = mapped_column(Text)
    reference_output: Mapped[str] = mapped_column(Text)
    preference: Mapped[float | None]  # 1 = reference wins, 2 = output wins, 1.5 = tie
    annotation_error: Mapped[str | None] = mapped_column(Text)  # why no preference
    finish_reason: Mapped[str | None] = mapped_column(String(32))  # "stop" or "length"
    # the instruction's verifiable constraints and how many the output meets (IFEval
    # strict and loose); all NULL when its constraints are not known
    constraints: Mapped[int | None]
    strict_met: Mapped[int | None]
    loose_met: Mapped[int | None]

    eval_run: Mapped[EvalRun] = relationship(back_populates="items")
