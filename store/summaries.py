"""One line per round of a campaign, for `cutloop status`, the end-of-run table and the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.judging import TaskCounts, task_counts
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
    # judging by people (judge kind human or review); 0 and None otherwise
    tasks: int  # answers published for people to judge
    tasks_done: int  # judged, or a draft accepted, edited or rejected
    tasks_expired: int  # still open when the round moved on: never trained on
    drafts_accepted: float | None  # of the drafts people decided on, accepted unchanged


# RoundSummary's fields read as they are from the round's (first) eval run
EVAL_FIELDS = (
    "annotator", "annotator_version", "reference", "win_rate", "standard_error",
    "discrete_win_rate", "lc_win_rate", "lc_standard_error", "lc_glm", "lc_missing",
    "decisive_win_rate", "ties", "n", "failed", "avg_length",
    "prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose", "truncated",
    "mcnemar_p", "mcnemar_b", "mcnemar_c",
)  # fmt: skip


def _counts(session: Session, column, round_ids: list[int]) -> dict[int, int]:
    """Rows per round, by the column that names the round."""
    query = select(column, func.count()).where(column.in_(round_ids)).group_by(column)
    return {round_id: count for round_id, count in session.execute(query)}


def summarize(session: Session, rounds: Sequence[Round]) -> list[RoundSummary]:
    """The rounds' summaries in a fixed number of queries, however many rounds there are
    (the API's rounds list and event stream read them every second)."""
    ids = [r.id for r in rounds]
    tallies: dict[int, dict[tuple, int]] = {}
    judged = (
        select(Generation.round_id, Judgment.status, Judgment.polarity, func.count())
        .join(Generation, Generation.id == Judgment.generation_id)
        .where(Generation.round_id.in_(ids))
        .group_by(Generation.round_id, Judgment.status, Judgment.polarity)
    )
    for round_id, status, polarity, count in session.execute(judged):
        tallies.setdefault(round_id, {})[(status, polarity)] = count
    steps: dict[int, list[TrainingStep]] = {}
    for round_id, step in session.execute(
        select(TrainingRun.round_id, TrainingStep)
        .join(TrainingRun, TrainingRun.id == TrainingStep.training_run_id)
        .where(TrainingRun.round_id.in_(ids))
        .order_by(TrainingStep.step)
    ):
        steps.setdefault(round_id, []).append(step)
    evaluations: dict[int, EvalRun] = {}
    for run in session.scalars(
        select(EvalRun).where(EvalRun.round_id.in_(ids)).order_by(EvalRun.id)
    ):
        evaluations.setdefault(run.round_id, run)  # a round's first eval run
    prompts = _counts(session, Prompt.used_in_round_id, ids)
    tasks = task_counts(session, ids)
    generations = _counts(session, Generation.round_id, ids)
    summaries = []
    for round_ in rounds:
        tally, done, evaluation, judging = (
            tallies.get(round_.id, {}),
            steps.get(round_.id, []),
            evaluations.get(round_.id),
            tasks.get(round_.id, TaskCounts()),
        )
        summaries.append(RoundSummary(
            index=round_.index,
            status=round_.status,
            stage=round_.stage,
            error=round_.error,
            error_detail=round_.error_detail,
            prompts=prompts.get(round_.id, 0),
            generations=generations.get(round_.id, 0),
            negative=tally.get((JudgmentStatus.OK, Polarity.NEGATIVE), 0),
            positive=tally.get((JudgmentStatus.OK, Polarity.POSITIVE), 0),
            failed_calls=tally.get((JudgmentStatus.FAILED, None), 0),
            steps=len(done),
            final_loss=done[-1].loss if done else None,
            flagged_fraction=sum(s.flagged_fraction for s in done) / len(done) if done else None,
            **{name: getattr(evaluation, name) if evaluation else None for name in EVAL_FIELDS},
            tasks=judging.total,
            tasks_done=judging.done,
            tasks_expired=judging.expired,
            drafts_accepted=judging.drafts_accepted,
        ))  # fmt: skip
    return summaries


def round_summary(session: Session, round_: Round) -> RoundSummary:
    (summary,) = summarize(session, [round_])
    return summary


def campaign_rounds(session: Session, campaign_id: int) -> list[Round]:
    return list(
        session.scalars(select(Round).where(Round.campaign_id == campaign_id).order_by(Round.index))
    )


def round_summaries(session: Session, campaign_id: int) -> list[RoundSummary]:
    return summarize(session, campaign_rounds(session, campaign_id))


class FinishedRounds:
    """Summaries of done rounds, kept: a done round's rows no longer change (its stages
    ran, its open judging tasks expired, its evaluation is written), so the API's rounds
    list and event streams, read every second by every open dashboard, query only the
    rounds still under way. A round is kept under its finish time, and a round no
    longer done (or done again) is summarised afresh."""

    def __init__(self) -> None:
        self._done: dict[int, tuple[datetime | None, RoundSummary]] = {}

    def summarize(self, session: Session, rounds: Sequence[Round]) -> list[RoundSummary]:
        kept = {
            r.id: hit[1]
            for r in rounds
            if r.status == RoundStatus.DONE
            and (hit := self._done.get(r.id)) is not None
            and hit[0] == r.finished_at
        }
        missing = [r for r in rounds if r.id not in kept]
        fresh = summarize(session, missing) if missing else []
        for round_, summary in zip(missing, fresh, strict=True):
            kept[round_.id] = summary
            if round_.status == RoundStatus.DONE:
                self._done[round_.id] = (round_.finished_at, summary)
        return [kept[r.id] for r in rounds]

    def round_summaries(self, session: Session, campaign_id: int) -> list[RoundSummary]:
        return self.summarize(session, campaign_rounds(session, campaign_id))

    def round_summary(self, session: Session, round_: Round) -> RoundSummary:
        (summary,) = self.summarize(session, [round_])
        return summary
