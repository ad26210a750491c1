"""The judge stage when people judge (judge kind human or review): the round's answers
are published as tasks (with a model judge's drafts, for review) and the stage waits,
reading the store, until every task is decided, the quota is met or the deadline passed.
Tasks still open then expire: counted, never trained on. Everything lives in the store,
so a driver killed while people judge resumes waiting with every judgment kept."""

from __future__ import annotations

import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from judge.base import JudgmentResult, JudgmentStatus
from orchestrator.collect import judgment_row, model_judgments
from orchestrator.config import PeopleJudgeSettings
from orchestrator.judging import by_people
from orchestrator.round_context import RoundContext, RoundFailure, commit_stage
from store.judging import (
    TaskCounts,
    close_open_tasks,
    first_published,
    publish_tasks,
    task_counts,
    untasked_generations,
)
from store.models import Generation, Judgment, Round, Stage, as_utc, utcnow
from store.results import add_judgments, count_generations
from workers.failpoints import failpoint


def judge_by_people(context: RoundContext, round_id: int) -> None:
    settings = by_people(context.config.judge)
    assert settings is not None
    with context.sessions() as session:
        pending = untasked_generations(session, round_id)
        total = count_generations(session, round_id)
    if settings.kind == "review":
        for drafted in model_judgments(context, pending, total):
            with context.sessions.begin() as session:
                failed = [judgment_row(g, r) for g, r in drafted if r.error is not None]
                add_judgments(session, failed)  # a failed draft: the person starts afresh
                publish_tasks(session, round_id, {g.id: draft_of(r) for g, r in drafted})
    else:
        with context.sessions.begin() as session:
            publish_tasks(session, round_id, {g.id: None for g, _ in pending})
    counts = wait_for_people(context, round_id, settings)
    commit_stage(context, round_id, Stage.JUDGE, lambda s, r: close_round_tasks(s, r, counts))


def draft_of(result: JudgmentResult) -> dict | None:
    if result.status != JudgmentStatus.OK:
        return None
    return {
        "judge_name": result.judge_name,
        "judge_model": result.judge_model,
        "text": result.text,
        "polarity": result.polarity.value if result.polarity else None,
        "spans": [list(s) for s in result.spans],
    }


def wait_for_people(
    context: RoundContext, round_id: int, settings: PeopleJudgeSettings
) -> TaskCounts:
    """Until every task is decided, `quota` are, or `deadline_s` passed since the tasks
    were published; the wait is the stage's work. Pause and cancel stop it."""
    snapshot = context.snapshot
    while True:
        with context.sessions() as session:
            counts = task_counts(session, [round_id]).get(round_id, TaskCounts())
            published = first_published(session, round_id)
        snapshot.stage, snapshot.done, snapshot.total = Stage.JUDGE.value, counts.done, counts.total
        snapshot.waiting = counts.waiting()
        left = _seconds_left(published, settings.deadline_s)
        if counts.open == 0 or (settings.quota is not None and counts.done >= settings.quota):
            break
        if left is not None and left <= 0:
            break
        failpoint("judge-wait")
        context.check_stop()
        pause = settings.poll_s if left is None else min(settings.poll_s, left)
        context.work(Stage.JUDGE, lambda p=pause: time.sleep(p))
    snapshot.waiting = None
    return counts


def _seconds_left(published, deadline_s: float | None) -> float | None:
    if deadline_s is None or published is None:
        return None
    passed = (utcnow() - as_utc(published)).total_seconds()
    return deadline_s - passed


def close_round_tasks(session: Session, round_: Round, counts: TaskCounts) -> None:
    """The open tasks expire; a round nobody judged fails (it has nothing to learn
    from), its tasks left open so that people can still judge and the round resume."""
    approved = session.scalar(
        select(func.count())
        .select_from(Judgment)
        .join(Generation, Generation.id == Judgment.generation_id)
        .where(Generation.round_id == round_.id, Judgment.annotator.is_not(None))
    )
    if not approved:
        raise RoundFailure(
            f"judge: no answer of round {round_.index} was judged or approved by a person "
            f"({counts.waiting()}); judge some in the dashboard and resume the campaign"
        )
    close_open_tasks(session, round_.id)
