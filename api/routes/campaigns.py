"""Campaigns: create from a config, list, get; launch (or extend), pause, resume, cancel;
the launch queue. A launch queues the campaign and returns 202 at once: the queue starts
its driver on the Ray cluster when there is room, and `cutloop status` sees the same."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Body, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.auth import require_token
from api.deps import CampaignName, CampaignRow, DbSession, State, named_or_404
from api.schemas import CampaignOut, LaunchRequest, problems
from api.store_threads import in_store_thread
from orchestrator.config import CampaignConfig
from orchestrator.launcher import check_fits_cluster, is_running, queue_positions
from orchestrator.lifecycle import (
    StateConflict,
    check_launch,
    request_stop,
    store_campaign,
)
from orchestrator.validate import review_campaign
from store.campaigns import list_campaigns, queue_campaign, queued_campaigns
from store.errors import StoreError
from store.judging import task_counts
from store.models import Campaign, CampaignStatus, Round, RoundStatus, Stage

router = APIRouter(prefix="/api/v1", tags=["campaigns"])
Mutating = [Depends(require_token)]
YAML_TYPES = {"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"}
CONFIG_BODY = {
    "required": True,
    "description": "A campaign config, as in campaigns/*.yaml: JSON, or YAML with "
    "Content-Type application/yaml.",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/yaml": {"schema": {"type": "string"}},
    },
}


def campaign_out(session: Session, campaign: Campaign, positions: dict[str, int]) -> CampaignOut:
    rounds: list[Round] = list(campaign.rounds)
    current = next((r for r in rounds if r.status != RoundStatus.DONE), None)
    return CampaignOut(
        name=campaign.name,
        status=campaign.status,
        rounds=campaign.config.get("rounds", 0),
        rounds_done=sum(r.status == RoundStatus.DONE and r.index > 0 for r in rounds),
        current_round=current.index if current else None,
        current_stage=current.stage if current else None,
        queue_position=positions.get(campaign.name),
        error=campaign.error,
        waiting=_waiting(session, current),
        created_at=campaign.created_at,
        updated_at=campaign.updated_at,
        config=campaign.config,
    )


def _waiting(session: Session, current: Round | None) -> str | None:
    if current is None or current.stage != Stage.JUDGE:
        return None
    counts = task_counts(session, [current.id]).get(current.id)
    return counts.waiting() if counts is not None and counts.open else None


def _unprocessable(loc: list[Any], message: str, given: Any = None) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors."""
    return HTTPException(422, [{"loc": loc, "msg": message, "type": "value_error", "input": given}])


def parse_config(body: bytes, content_type: str) -> CampaignConfig:
    media = content_type.split(";")[0].strip().lower()
    try:
        raw = yaml.safe_load(body) if media in YAML_TYPES else json.loads(body or b"null")
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as error:
        kind = "YAML" if media in YAML_TYPES else "JSON"
        raise _unprocessable(["body"], f"invalid {kind}: {error}".splitlines()[0]) from None
    if not isinstance(raw, dict):
        raise _unprocessable(["body"], "expected a mapping of campaign settings", raw)
    try:
        return CampaignConfig.model_validate(raw)
    except ValidationError as error:
        details = [
            {"loc": ["body", *e["loc"]], "msg": e["msg"], "type": e["type"],
             "input": e.get("input")}
            for e in error.errors(include_url=False, include_context=False)
        ]  # fmt: skip
        raise HTTPException(422, json.loads(json.dumps(details, default=str))) from None


@router.post(
    "/campaigns",
    status_code=201,
    response_model=CampaignOut,
    dependencies=Mutating,
    openapi_extra={"requestBody": CONFIG_BODY},
    responses={200: {"model": CampaignOut, "description": "the same campaign, already stored"},
               **problems(401, 409, 422)},
)  # fmt: skip
async def create(request: Request, response: Response, state: State) -> CampaignOut:
    """Store a campaign from its config, checked as `cutloop run` and `cutloop validate`
    check a file (its files and model, whether its judge and annotator can judge its
    instructions, its memory budget). It does not run until launched."""
    config = parse_config(await request.body(), request.headers.get("content-type", ""))
    review = await run_in_threadpool(review_campaign, config, Path(state.settings.home))
    if review.problems:
        raise HTTPException(
            422,
            [{"loc": ["body", *p.setting.split(".")], "msg": str(p), "type": "value_error"}
             for p in review.problems],
        )  # fmt: skip

    def write() -> CampaignOut:
        with state.sessions.begin() as session:
            try:
                campaign, created = store_campaign(session, config)
            except (StateConflict, StoreError) as error:  # or created concurrently meanwhile
                raise HTTPException(409, str(error)) from None
            response.status_code = 201 if created else 200
            return campaign_out(session, campaign, queue_positions(session))

    return await in_store_thread(write)()


@router.get("/campaigns", response_model=list[CampaignOut])
@in_store_thread
def campaigns(db: DbSession) -> list[CampaignOut]:
    positions = queue_positions(db)
    return [campaign_out(db, c, positions) for c in list_campaigns(db)]


@router.get("/campaigns/{name}", response_model=CampaignOut, responses=problems(404))
@in_store_thread
def campaign(found: CampaignRow, db: DbSession) -> CampaignOut:
    return campaign_out(db, found, queue_positions(db))


@router.get("/queue", response_model=list[CampaignOut])
@in_store_thread
def queue(db: DbSession) -> list[CampaignOut]:
    """Launched campaigns waiting for room on the cluster, next first."""
    positions = queue_positions(db)
    return [campaign_out(db, c, positions) for c in queued_campaigns(db)]


def _launch(state: State, name: str, extra_rounds: int) -> CampaignOut:
    with state.sessions.begin() as session:
        found = named_or_404(session, name)
        try:
            config = check_launch(found, extra_rounds, is_running(session, found))
        except StateConflict as error:
            raise HTTPException(409, str(error)) from None
        try:
            check_fits_cluster(config)
        except ValueError as error:
            raise _unprocessable(["body", "config"], str(error)) from None
        queue_campaign(session, found, config.rounds + extra_rounds)
        session.flush()
        out = campaign_out(session, found, queue_positions(session))
    state.wake.set()
    return out


LAUNCH_ERRORS = problems(401, 404, 409, 422)


@router.post("/campaigns/{name}/launch", status_code=202, response_model=CampaignOut,
             dependencies=Mutating, responses=LAUNCH_ERRORS)  # fmt: skip
@in_store_thread
def launch(
    name: CampaignName,
    state: State,
    request: Annotated[LaunchRequest | None, Body()] = None,
) -> CampaignOut:
    """Queue the campaign to run (or resume) its rounds, after adding `extra_rounds`; it
    starts as soon as the cluster has room. A campaign whose driver died resumes where
    its store says."""
    return _launch(state, name, request.extra_rounds if request else 0)


@router.post("/campaigns/{name}/resume", status_code=202, response_model=CampaignOut,
             dependencies=Mutating, responses=LAUNCH_ERRORS)  # fmt: skip
@in_store_thread
def resume(name: CampaignName, state: State) -> CampaignOut:
    """Launch a paused or failed campaign again from where it stopped."""
    return _launch(state, name, 0)


def _request_stop(db: Session, found: Campaign, wanted: CampaignStatus) -> CampaignOut:
    try:
        request_stop(db, found, wanted)
    except StateConflict as error:
        raise HTTPException(409, str(error)) from None
    db.commit()
    db.refresh(found)
    return campaign_out(db, found, queue_positions(db))


@router.post("/campaigns/{name}/pause", status_code=202, response_model=CampaignOut,
             dependencies=Mutating, responses=problems(401, 404, 409))  # fmt: skip
@in_store_thread
def pause(found: CampaignRow, db: DbSession) -> CampaignOut:
    """Stop after the current batch (or leave the queue); resume goes on from there."""
    return _request_stop(db, found, CampaignStatus.PAUSED)


@router.post("/campaigns/{name}/cancel", status_code=202, response_model=CampaignOut,
             dependencies=Mutating, responses=problems(401, 404, 409))  # fmt: skip
@in_store_thread
def cancel(found: CampaignRow, db: DbSession) -> CampaignOut:
    """Stop for good after the current batch; what it produced stays stored."""
    return _request_stop(db, found, CampaignStatus.CANCELLED)
