"""People as judges: a round's judging tasks, claimed under a lease, judged, reviewed or
skipped by annotators (their own tokens); annotators added by the operator. A judgment
is committed before the answer is sent, and the same judgment sent twice is stored
once (200 with the stored one)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from sqlalchemy.orm import Session

from api.auth import AnnotatorName, require_token
from api.deps import CampaignRow, DbSession, PageAfter, RoundRow, State
from api.judging_schemas import (
    AnnotatorIn,
    AnnotatorToken,
    Draft,
    JudgmentIn,
    Me,
    TaskJudgment,
    TaskOut,
)
from api.schemas import Page, problems
from api.store_threads import in_store_thread
from cut.spans import check_spans
from orchestrator.config import HumanJudgeSettings
from store.annotators import add_annotator
from store.errors import StoreError
from store.judging import (
    Submission,
    TaskConflict,
    claim_task,
    reject_draft,
    skip_task,
    submit_judgment,
    task_in_round,
    tasks_page,
)
from store.models import Campaign, Generation, JudgingTask, Judgment, Prompt, Round

router = APIRouter(prefix="/api/v1", tags=["judging"])
TASKS = "/campaigns/{name}/rounds/{index}/tasks"
TaskId = Annotated[int, Path(ge=1, description="the task's id")]
Result = TypeVar("Result")
DEFAULT_LEASE_S = HumanJudgeSettings.model_fields["lease_s"].default


def task_out(
    task: JudgingTask,
    round_: Round,
    generation: Generation,
    prompt: Prompt,
    judgment: Judgment | None,
) -> TaskOut:
    return TaskOut(
        id=task.id,
        round=round_.index,
        generation_id=generation.id,
        instruction=prompt.instruction,
        answer=generation.text,
        finish_reason=generation.finish_reason,
        draft=Draft.model_validate(task.draft) if task.draft else None,
        claimed_by=task.claimed_by,
        lease_until=task.lease_until,
        skips=task.skips,
        outcome=task.outcome,
        done_by=task.done_by,
        done_at=task.done_at,
        judgment=TaskJudgment(
            id=judgment.id,
            judge_name=judgment.judge_name,
            annotator=judgment.annotator,
            text=judgment.text,
            polarity=judgment.polarity,
            spans=judgment.spans or [],
            created_at=judgment.created_at,
        )
        if judgment is not None and judgment.annotator
        else None,
    )


def _out(db: Session, task: JudgingTask, round_: Round) -> TaskOut:
    generation = db.get_one(Generation, task.generation_id)
    prompt = db.get_one(Prompt, generation.prompt_id)
    judgment = db.get(Judgment, task.judgment_id) if task.judgment_id else None
    return task_out(task, round_, generation, prompt, judgment)


def _people_judge(campaign: Campaign) -> dict:
    judge = campaign.config.get("judge", {})
    if judge.get("kind") not in ("human", "review"):
        raise HTTPException(
            409,
            f"campaign {campaign.name!r} is judged by its {judge.get('kind')} judge, "
            "not by people (judge kind human or review)",
        )
    return judge


def _task(db: Session, round_: Round, task_id: int) -> JudgingTask:
    task = task_in_round(db, round_.id, task_id)
    if task is None:
        raise HTTPException(404, f"round {round_.index} has no task {task_id}")
    return task


def _committed(db: Session, change: Callable[[], Result]) -> Result:
    """`change`'s result, committed before the reply; a TaskConflict is a 409 and
    leaves the store as it was."""
    try:
        result = change()
    except TaskConflict as error:
        db.rollback()
        raise HTTPException(409, str(error)) from None
    db.commit()
    return result


JUDGING_ERRORS = problems(401, 404, 409)


@router.get(TASKS, response_model=Page[TaskOut], responses=problems(404))
@in_store_thread
def tasks(
    found: CampaignRow,
    round_: RoundRow,
    db: DbSession,
    state: Annotated[
        str, Query(pattern="^(open|all)$", description="open: not yet decided")
    ] = "open",
    after: PageAfter = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Page[TaskOut]:
    """The round's judging tasks, oldest first."""
    rows = tasks_page(db, round_.id, state == "open", after, limit + 1)
    data = [task_out(t, round_, g, p, j) for t, g, p, j in rows[:limit]]
    return Page[TaskOut](
        data=data,
        has_more=len(rows) > limit,
        first_id=data[0].id if data else None,
        last_id=data[-1].id if data else None,
    )


@router.post(
    f"{TASKS}/claim",
    response_model=TaskOut,
    responses={204: {"description": "no open task is free"}, **JUDGING_ERRORS},
)
@in_store_thread
def claim(
    found: CampaignRow, round_: RoundRow, db: DbSession, annotator: AnnotatorName
) -> TaskOut | Response:
    """The task this annotator holds, else the next free one, now theirs for the
    campaign's judge.lease_s; 204 when none is free."""
    judge = _people_judge(found)
    lease = timedelta(seconds=judge.get("lease_s", DEFAULT_LEASE_S))
    task = claim_task(db, round_.id, annotator, lease)
    if task is None:
        db.rollback()
        return Response(status_code=204)
    db.commit()
    return _out(db, task, round_)


@router.post(
    f"{TASKS}/{{task_id}}/judgment",
    response_model=TaskOut,
    status_code=201,
    responses={
        200: {"model": TaskOut, "description": "this judgment, stored before"},
        **problems(400, 401, 404, 409, 422),
    },
)
@in_store_thread
def judge(
    found: CampaignRow,
    round_: RoundRow,
    task_id: TaskId,
    given: JudgmentIn,
    db: DbSession,
    annotator: AnnotatorName,
    response: Response,
) -> TaskOut:
    """Store the annotator's judgment of the task's answer, committed before the reply."""
    _people_judge(found)
    task = _task(db, round_, task_id)
    answer = db.get_one(Generation, task.generation_id).text
    try:
        spans = check_spans(given.spans, len(answer))
    except ValueError as error:
        raise HTTPException(
            422,
            [
                {
                    "loc": ["body", "spans"],
                    "msg": str(error),
                    "type": "value_error",
                    "input": given.spans,
                }
            ],
        ) from None
    submission = Submission(given.text, given.polarity, spans)
    _, stored_now = _committed(db, lambda: submit_judgment(db, task, annotator, submission))
    response.status_code = 201 if stored_now else 200
    return _out(db, task, round_)


@router.post(f"{TASKS}/{{task_id}}/reject", response_model=TaskOut, responses=JUDGING_ERRORS)
@in_store_thread
def reject(
    found: CampaignRow,
    round_: RoundRow,
    task_id: TaskId,
    db: DbSession,
    annotator: AnnotatorName,
) -> TaskOut:
    """Throw the task's draft away (judge kind review): nothing of it is trained on."""
    _people_judge(found)
    task = _task(db, round_, task_id)
    _committed(db, lambda: reject_draft(db, task, annotator))
    return _out(db, task, round_)


@router.post(f"{TASKS}/{{task_id}}/skip", response_model=TaskOut, responses=JUDGING_ERRORS)
@in_store_thread
def skip(
    found: CampaignRow,
    round_: RoundRow,
    task_id: TaskId,
    db: DbSession,
    annotator: AnnotatorName,
) -> TaskOut:
    """Give the task back to the queue, behind the tasks skipped fewer times."""
    _people_judge(found)
    task = _task(db, round_, task_id)
    _committed(db, lambda: skip_task(db, task, annotator))
    return _out(db, task, round_)


@router.get("/annotator", response_model=Me, responses=problems(401))
def me(annotator: AnnotatorName) -> Me:
    """Whose annotator token this is (the dashboard's judging view asks)."""
    return Me(name=annotator)


@router.post(
    "/annotators",
    response_model=AnnotatorToken,
    status_code=201,
    dependencies=[Depends(require_token)],
    responses=problems(400, 401, 403, 409, 422),
)
@in_store_thread
def add(given: AnnotatorIn, state: State) -> AnnotatorToken:
    """Add an annotator (operator only); the token in the reply is shown once."""
    with state.sessions.begin() as session:
        try:
            token = add_annotator(session, given.name)
        except StoreError as error:
            raise HTTPException(409, str(error)) from None
    return AnnotatorToken(name=given.name, token=token)
