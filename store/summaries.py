"""One line per round of a campaign, for `cutloop status`, the end-of-run table and the API."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import (
    EvalRun,
    Generation,
    Judgment,
    JudgmentStatus,
    Polarity,
    Prompt,
    Round,
    RoundStatus,
    Stage,
    TrainingRun,
    TrainingStep,
)


@dataclass(frozen=True)
class RoundSummary:
    index: int
    status: RoundStatus
    stage: Stage
    error: str | None  # one line
    error_detail: str | None  # the whole message and traceback
    prompts: int
    generations: int
    negative: int  # ok judgments by polarity
    positive: int
    failed_calls: int  # failed judge calls recorded (a later retry may have succeeded)
    steps: int
    final_loss: float | None
    flagged_fraction: float | None  # of Misalign tokens, mean over the round's steps
    # AlpacaEval's scores of the round's policy against the eval set's reference
    annotator: str | None
    annotator_version: str | None
    reference: str | None  # who wrote the reference outputs
    win_rate: float | None
    standard_error: float | None
    discrete_win_rate: float | None
    lc_win_rate: float | None  # length-controlled
    lc_standard_error: float | None
    lc_glm: str | None
    lc_missing: str | None  # why there is no lc_win_rate
    decisive_win_rate: float | None  # wins / (wins + losses), percent
    ties: int | None
    n: int | None  # items with a preference
    failed: int | None  # items the annotator could not decide (not in n)
    avg_length: float | None
    # IFEval accuracies (percent) on the eval answers whose constraints are known
    prompt_strict: float | None
    prompt_loose: float | None
    instruction_strict: float | None
    instruction_loose: float | None
    truncated: float | None  # percent of eval answers cut off at max_new_tokens
    mcnemar_p: float | None  # prompt-level strict against round 0; None in round 0
    mcnemar_b: int | None  # round 0 failed, this round passes
    mcnemar_c: int | None  # round 0 passed, this round fails


# RoundSummary's fields read as they are from the round's (first) eval run
EVAL_FIELDS = (
    "annotator", "annotator_version", "reference", "win_rate", "standard_error",
    "discrete_win_rate", "lc_win_rate", "lc_standard_error", "lc_glm", "lc_missing",
    "decisive_win_rate", "ties", "n", "failed", "avg_length",
    "prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "truncated",
    "mcnemar_p", "mcnemar_b", "mcnemar_c",
)  # fmt: skip


def _count(session: Session, query) -> int:
    return session.scalar(select(func.count()).select_from(query.subquery())) or 0


def round_summary(session: Session, round_: Round) -> RoundSummary:
    judgments = (
        select(Judgment.status, Judgment.polarity)
        .join(Generation, Generation.id == Judgment.generation_id)
        .where(Generation.round_id == round_.id)
        .subquery()
    )
    tallies = {
        (status, polarity): count
        for status, polarity, count in session.execute(
            select(judgments.c.status, judgments.c.polarity, func.count()).group_by(
                judgments.c.status, judgments.c.polarity
            )
        )
    }
    steps = list(
        session.scalars(
            select(TrainingStep)
            .join(TrainingRun, TrainingRun.id == TrainingStep.training_run_id)
            .where(TrainingRun.round_id == round_.id)
            .order_by(TrainingStep.step)
        )
    )
    evaluation = session.scalar(
        select(EvalRun).where(EvalRun.round_id == round_.id).order_by(EvalRun.id).limit(1)
    )
    return RoundSummary(
        index=round_.index,
        status=round_.status,
        stage=round_.stage,
        error=round_.error,
        error_detail=round_.error_detail,
        prompts=_count(session, select(Prompt.id).where(Prompt.used_in_round_id == round_.id)),
        generations=_count(session, select(Generation.id).where(Generation.round_id == round_.id)),
        negative=tallies.get((JudgmentStatus.OK, Polarity.NEGATIVE), 0),
        positive=tallies.get((JudgmentStatus.OK, Polarity.POSITIVE), 0),
        failed_calls=tallies.get((JudgmentStatus.FAILED, None), 0),
        steps=len(steps),
        final_loss=steps[-1].loss if steps else None,
        flagged_fraction=sum(s.flagged_fraction for s in steps) / len(steps) if steps else None,
        **{name: getattr(evaluation, name) if evaluation else None for name in EVAL_FIELDS},
    )


def round_summaries(session: Session, campaign_id: int) -> list[RoundSummary]:
    rounds = session.scalars(
        select(Round).where(Round.campaign_id == campaign_id).order_by(Round.index)
    )
    return [round_summary(session, r) for r in rounds]
