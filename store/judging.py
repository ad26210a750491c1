"""Judging by people: a round's answers published as tasks, claimed under a lease (two
annotators never hold one task at once), judged, reviewed, skipped or left open at a
deadline. Every change is a conditional UPDATE, so concurrent annotators and a
restarted driver agree on the store's word on both engines."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cut.examples import Polarity
from cut.spans import merge_spans
from judge.base import JudgmentStatus
from store.models import (
    Generation,
    JudgingTask,
    Judgment,
    Prompt,
    TaskOutcome,
    as_utc,
    utcnow,
)

HUMAN = "human"  # judge_name of a judgment a person wrote (or a draft they edited)
CLAIM_TRIES = 8
SPREAD = 8  # concurrent claims pick among the first few open tasks, not all the first


class TaskConflict(RuntimeError):
    """The task is not this annotator's to judge now; the message says why."""


@dataclass(frozen=True)
class Submission:
    text: str
    polarity: Polarity
    spans: tuple[tuple[int, int], ...] = ()

    def same_as(self, stored: dict[str, Any] | Judgment | None) -> bool:
        if stored is None:
            return False
        read = stored.get if isinstance(stored, dict) else lambda key: getattr(stored, key)
        return (
            read("text") == self.text
            and Polarity(read("polarity")) == self.polarity
            and merge_spans(tuple(s) for s in read("spans") or []) == self.spans
        )


@dataclass(frozen=True)
class TaskCounts:
    total: int = 0
    judged: int = 0  # written by a person
    accepted: int = 0  # drafts approved unchanged
    edited: int = 0
    rejected: int = 0
    expired: int = 0  # open when the round moved on

    @property
    def done(self) -> int:
        return self.judged + self.accepted + self.edited + self.rejected

    @property
    def open(self) -> int:
        return self.total - self.done - self.expired

    @property
    def drafts_accepted(self) -> float | None:
        """Of the drafts people decided on, the fraction approved unchanged."""
        reviewed = self.accepted + self.edited + self.rejected
        return self.accepted / reviewed if reviewed else None

    def waiting(self) -> str:
        return waiting_line(self.done, self.total)


def waiting_line(done: int, total: int) -> str:
    return f"waiting for judgments: {done} of {total} done"


def publish_tasks(session: Session, round_id: int, drafts: dict[int, dict[str, Any] | None]) -> int:
    """A task per generation id of `drafts` (with its draft, or None) that has none yet;
    returns how many were added."""
    have = set(
        session.scalars(select(JudgingTask.generation_id).where(JudgingTask.round_id == round_id))
    )
    new = [
        JudgingTask(round_id=round_id, generation_id=g, draft=d, skips=0)
        for g, d in drafts.items()
        if g not in have
    ]
    session.add_all(new)
    session.flush()
    return len(new)


def untasked_generations(session: Session, round_id: int) -> list[tuple[Generation, Prompt]]:
    """The round's generations without a task yet, in generation order."""
    tasked = select(JudgingTask.generation_id).where(JudgingTask.round_id == round_id)
    query = (
        select(Generation, Prompt)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(Generation.round_id == round_id, Generation.id.not_in(tasked))
        .order_by(Generation.id)
    )
    return [(g, p) for g, p in session.execute(query)]


def task_counts(session: Session, round_ids: Sequence[int]) -> dict[int, TaskCounts]:
    """Per round with tasks: how many, and how they ended so far."""
    rows = session.execute(
        select(JudgingTask.round_id, JudgingTask.outcome, func.count())
        .where(JudgingTask.round_id.in_(round_ids))
        .group_by(JudgingTask.round_id, JudgingTask.outcome)
    )
    tallies: dict[int, dict[TaskOutcome | None, int]] = {}
    for round_id, outcome, count in rows:
        tallies.setdefault(round_id, {})[outcome] = count
    return {
        round_id: TaskCounts(
            total=sum(tally.values()),
            **{o.value: tally.get(o, 0) for o in TaskOutcome},
        )
        for round_id, tally in tallies.items()
    }


def first_published(session: Session, round_id: int) -> datetime | None:
    """When the round's tasks were published: its deadline counts from there."""
    return session.scalar(
        select(func.min(JudgingTask.created_at)).where(JudgingTask.round_id == round_id)
    )


def close_open_tasks(session: Session, round_id: int) -> int:
    """The round moves on: its open tasks expire (never trained on); returns how many."""
    result = session.execute(
        update(JudgingTask)
        .execution_options(synchronize_session=False)
        .where(JudgingTask.round_id == round_id, JudgingTask.outcome.is_(None))
        .values(outcome=TaskOutcome.EXPIRED, done_at=utcnow(), claimed_by=None, lease_until=None)
    )
    return result.rowcount


def _free(now: datetime):
    return or_(JudgingTask.claimed_by.is_(None), JudgingTask.lease_until <= now)


def claim_task(
    session: Session, round_id: int, annotator: str, lease: timedelta
) -> JudgingTask | None:
    """The open task `annotator` holds (its lease renewed), else a free one now theirs:
    the least skipped first. None when every task is done or held by someone."""
    now = utcnow()
    held = session.scalar(
        select(JudgingTask).where(
            JudgingTask.round_id == round_id,
            JudgingTask.outcome.is_(None),
            JudgingTask.claimed_by == annotator,
            JudgingTask.lease_until > now,
        )
    )
    if held is not None:
        held.lease_until = now + lease
        session.flush()
        return held
    for _ in range(CLAIM_TRIES):
        candidates = session.execute(
            select(JudgingTask.id, JudgingTask.skips)
            .where(JudgingTask.round_id == round_id, JudgingTask.outcome.is_(None), _free(now))
            .order_by(JudgingTask.skips, JudgingTask.id)
            .limit(SPREAD)
        ).all()
        if not candidates:
            return None
        fewest = candidates[0].skips
        chosen = random.choice([c.id for c in candidates if c.skips == fewest])
        taken = session.execute(
            update(JudgingTask)
            .execution_options(synchronize_session=False)
            .where(JudgingTask.id == chosen, JudgingTask.outcome.is_(None), _free(now))
            .values(claimed_by=annotator, lease_until=now + lease)
        ).rowcount
        if taken == 1:
            return session.get_one(JudgingTask, chosen, populate_existing=True)
    return None


def _check_open_for(task: JudgingTask, annotator: str) -> None:
    if task.outcome == TaskOutcome.EXPIRED:
        raise TaskConflict(f"task {task.id} closed when its round moved on")
    if task.outcome is not None:
        raise TaskConflict(f"task {task.id} was {task.outcome.value} by {task.done_by}")
    if (
        task.claimed_by not in (None, annotator)
        and task.lease_until is not None
        and as_utc(task.lease_until) > utcnow()
    ):
        raise TaskConflict(f"task {task.id} is being judged by {task.claimed_by}")


def _finish(
    session: Session,
    task: JudgingTask,
    annotator: str,
    outcome: TaskOutcome,
    judgment_id: int | None,
) -> None:
    """Mark the task done, unless someone else finished or took it meanwhile."""
    now = utcnow()
    done = session.execute(
        update(JudgingTask)
        .execution_options(synchronize_session=False)
        .where(
            JudgingTask.id == task.id,
            JudgingTask.outcome.is_(None),
            or_(_free(now), JudgingTask.claimed_by == annotator),
        )
        .values(
            outcome=outcome,
            done_by=annotator,
            done_at=now,
            judgment_id=judgment_id,
            claimed_by=None,
            lease_until=None,
        )
    ).rowcount
    if done != 1:
        raise TaskConflict(f"task {task.id} changed while it was being judged")


def submit_judgment(
    session: Session, task: JudgingTask, annotator: str, submission: Submission
) -> tuple[Judgment, bool]:
    """Store `annotator`'s judgment of the task: (the judgment, True) when stored now,
    (the stored one, False) when this same judgment was stored before (a retried
    request). A draft approved unchanged keeps its judge's name; any other judgment
    is the person's own (HUMAN)."""
    stored = _stored_before(session, task, annotator, submission)
    if stored is not None:
        return stored, False
    _check_open_for(task, annotator)
    draft = task.draft
    if draft is None:
        outcome, name, model = TaskOutcome.JUDGED, HUMAN, None
    elif submission.same_as(draft):
        outcome, name, model = TaskOutcome.ACCEPTED, draft["judge_name"], draft["judge_model"]
    else:
        outcome, name, model = TaskOutcome.EDITED, HUMAN, None
    judgment = Judgment(
        generation_id=task.generation_id,
        judge_name=name,
        judge_model=model,
        status=JudgmentStatus.OK,
        text=submission.text,
        polarity=submission.polarity,
        spans=[list(s) for s in submission.spans],
        annotator=annotator,
        latency_s=max(0.0, (utcnow() - as_utc(task.created_at)).total_seconds()),
    )
    try:
        with session.begin_nested():  # a concurrent retry of the same request may win
            session.add(judgment)
            session.flush()
            _finish(session, task, annotator, outcome, judgment.id)
    except (IntegrityError, TaskConflict):
        session.refresh(task)
        stored = _stored_before(session, task, annotator, submission)
        if stored is not None:
            return stored, False
        _check_open_for(task, annotator)
        raise TaskConflict(f"task {task.id} changed while it was being judged") from None
    session.refresh(task)
    return judgment, True


def _stored_before(
    session: Session, task: JudgingTask, annotator: str, submission: Submission
) -> Judgment | None:
    if task.outcome is None or task.done_by != annotator or task.judgment_id is None:
        return None
    stored = session.get_one(Judgment, task.judgment_id)
    return stored if submission.same_as(stored) else None


def reject_draft(session: Session, task: JudgingTask, annotator: str) -> bool:
    """Throw the task's draft away (nothing is trained on); False when `annotator` had
    rejected it already."""
    if task.outcome == TaskOutcome.REJECTED and task.done_by == annotator:
        return False
    if task.draft is None:
        raise TaskConflict(f"task {task.id} has no draft to reject: write a judgment or skip")
    _check_open_for(task, annotator)
    try:
        _finish(session, task, annotator, TaskOutcome.REJECTED, None)
    except TaskConflict:
        session.refresh(task)
        if task.outcome == TaskOutcome.REJECTED and task.done_by == annotator:
            return False
        _check_open_for(task, annotator)
        raise
    session.refresh(task)
    return True


def skip_task(session: Session, task: JudgingTask, annotator: str) -> None:
    """Give the task back: open to anyone, behind the tasks skipped fewer times."""
    _check_open_for(task, annotator)
    if task.claimed_by != annotator:
        raise TaskConflict(f"task {task.id} is not held by {annotator}: claim it first")
    session.execute(
        update(JudgingTask)
        .execution_options(synchronize_session=False)
        .where(
            JudgingTask.id == task.id,
            JudgingTask.claimed_by == annotator,
            JudgingTask.outcome.is_(None),
        )
        .values(claimed_by=None, lease_until=None, skips=JudgingTask.skips + 1)
    )
    session.refresh(task)


def tasks_page(
    session: Session, round_id: int, open_only: bool, after: int | None, limit: int
) -> list[tuple[JudgingTask, Generation, Prompt, Judgment | None]]:
    """Up to `limit` of the round's tasks (only the undecided ones when `open_only`) with
    ids above `after`, in id order, each with its answer, instruction and judgment."""
    query = (
        select(JudgingTask, Generation, Prompt, Judgment)
        .join(Generation, Generation.id == JudgingTask.generation_id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .outerjoin(Judgment, Judgment.id == JudgingTask.judgment_id)
        .where(JudgingTask.round_id == round_id)
    )
    if open_only:
        query = query.where(JudgingTask.outcome.is_(None))
    if after is not None:
        query = query.where(JudgingTask.id > after)
    rows = session.execute(query.order_by(JudgingTask.id).limit(limit))
    return [tuple(row) for row in rows]  # type: ignore[misc]


def task_in_round(session: Session, round_id: int, task_id: int) -> JudgingTask | None:
    return session.scalar(
        select(JudgingTask).where(JudgingTask.id == task_id, JudgingTask.round_id == round_id)
    )
