"""A campaign's rounds, their judgments and answers (with CUT-flagged tokens), its
evaluation table and its checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response

from api.deps import (
    CampaignName,
    CampaignRow,
    DbSession,
    PageAfter,
    RoundIndex,
    RoundRow,
    State,
    round_or_404,
)
from api.flagged import policy_tokenizer, segments
from api.schemas import (
    AnswerOut,
    CheckpointOut,
    EvaluationRow,
    FlagReport,
    JudgmentOut,
    Page,
    RoundDetail,
    RoundOut,
    StageTiming,
    StepOut,
    problems,
)
from api.store_threads import in_store_thread
from cut.examples import Polarity
from judge.base import JudgmentStatus
from store.browse import (
    JudgmentFilter,
    answer_of,
    checkpoints_of,
    judgments_page,
    stages_of,
    training_of,
)
from store.evals import round_eval_run
from store.models import Checkpoint, RoundStatus

router = APIRouter(prefix="/api/v1/campaigns/{name}", tags=["rounds"], responses=problems(404))


def checkpoint_out(checkpoint: Checkpoint) -> CheckpointOut:
    parent = checkpoint.parent.version if checkpoint.parent is not None else None
    return CheckpointOut(
        version=checkpoint.version, kind=checkpoint.kind, location=checkpoint.location,
        sha256=checkpoint.sha256, parent_version=parent, created_at=checkpoint.created_at,
    )  # fmt: skip


@router.get("/rounds", response_model=list[RoundOut])
@in_store_thread
def rounds(found: CampaignRow, db: DbSession, state: State) -> list[RoundOut]:
    return [RoundOut.model_validate(s) for s in state.finished.round_summaries(db, found.id)]


@router.get("/rounds/{index}", response_model=RoundDetail)
@in_store_thread
def round_detail(found: CampaignRow, round_: RoundRow, db: DbSession, state: State) -> RoundDetail:
    """Stage, per-stage timings, counts, training metrics, checkpoint and scores."""
    summary = state.finished.round_summary(db, round_)
    run, steps = training_of(db, round_.id)
    checkpoint = run.checkpoint if run is not None else None
    return RoundDetail.model_validate(
        {
            **RoundOut.model_validate(summary).model_dump(),
            "error_detail": summary.error_detail,
            "stages": [
                StageTiming(
                    stage=s.stage,
                    started_at=s.started_at,
                    finished_at=s.finished_at,
                    seconds=(s.finished_at - s.started_at).total_seconds()
                    if s.finished_at
                    else None,
                )
                for s in stages_of(db, round_.id)
            ],
            "training_steps": [StepOut.model_validate(s) for s in steps],
            "checkpoint": checkpoint_out(checkpoint) if checkpoint is not None else None,
        }
    )


@router.get("/rounds/{index}/judgments", response_model=Page[JudgmentOut])
@in_store_thread
def judgments(
    name: CampaignName,
    index: RoundIndex,
    db: DbSession,
    state: State,
    polarity: Polarity | None = None,
    status: JudgmentStatus | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="text in the judgment or the answer")
    ] = None,
    after: PageAfter = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> Response:
    """The round's judgments, oldest first, filtered by polarity, status and text."""
    round_ = round_or_404(db, name, index)
    where = JudgmentFilter(polarity, status, q)
    done = round_.status == RoundStatus.DONE
    key = (round_.id, round_.finished_at, where, after, limit)
    body = state.done_pages.get(key) if done else None
    if body is None:
        rows = judgments_page(db, round_.id, where, after, limit + 1)
        data = [JudgmentOut.model_validate(row) for row in rows[:limit]]
        page = Page[JudgmentOut](
            data=data,
            has_more=len(rows) > limit,
            first_id=data[0].id if data else None,
            last_id=data[-1].id if data else None,
        )
        body = page.model_dump_json(by_alias=True).encode()
        if done:
            state.done_pages.put(key, body)
    return Response(body, media_type="application/json")  # as FastAPI would send `page`


@router.get("/answers/{generation_id}", response_model=AnswerOut)
@in_store_thread
def answer(
    found: CampaignRow, db: DbSession, generation_id: Annotated[int, Path(ge=0)]
) -> AnswerOut:
    """One answer with its judgments and the tokens CUT flagged in it, with their ratios
    p_al / p_mis, per round that trained on it."""
    stored = answer_of(db, found.id, generation_id)
    if stored is None:
        raise HTTPException(404, f"campaign {found.name!r} has no answer {generation_id}")
    generation, prompt = stored.generation, stored.prompt
    tokenizer = policy_tokenizer(found.config.get("policy", ""))
    reports = [
        FlagReport(
            round=index,
            flagged=len(flags.positions),
            positions=flags.positions,
            ratios=flags.ratios,
            segments=segments(tokenizer, generation.text, flags.positions, flags.ratios)
            if tokenizer is not None
            else None,
        )
        for index, flags in stored.flagged
    ]
    return AnswerOut(
        generation_id=generation.id,
        round=stored.round_index,
        instruction=prompt.instruction,
        text=generation.text,
        finish_reason=generation.finish_reason,
        policy_version=generation.policy_version,
        prompt_tokens=generation.prompt_tokens,
        completion_tokens=generation.completion_tokens,
        judgments=[JudgmentOut.model_validate(row) for row in stored.judgments],
        flagged_tokens=reports,
    )


@router.get("/evaluation", response_model=list[EvaluationRow])
@in_store_thread
def evaluation(found: CampaignRow, db: DbSession) -> list[EvaluationRow]:
    """Per round, every metric the evaluate stage stored (rounds not evaluated yet are
    left out)."""
    rows = []
    for round_ in found.rounds:
        run = round_eval_run(db, found.id, round_.index)
        if run is not None:
            rows.append(EvaluationRow.model_validate({**_columns(run), "round": round_.index}))
    return rows


def _columns(row) -> dict:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns}


@router.get("/checkpoints", response_model=list[CheckpointOut])
@in_store_thread
def checkpoints(found: CampaignRow, db: DbSession) -> list[CheckpointOut]:
    """Published weights, one version per trained round."""
    return [checkpoint_out(c) for c in checkpoints_of(db, found.id)]
