"""A campaign's progress as server-sent events: `progress` (stage, done/total, latest
loss and win rate, from the running driver), `round` (a round's row whenever it
changes), `campaign` (its status changed) and a last `end` once it stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from api.deps import CampaignRow, State
from api.routes.campaigns import campaign_out
from api.schemas import CampaignOut, Progress, RoundOut, problems
from api.store_threads import in_store_thread
from orchestrator.launcher import find_driver, queue_positions
from store.campaigns import campaign_by_name
from store.models import CampaignStatus, RoundStatus

router = APIRouter(prefix="/api/v1/campaigns/{name}", tags=["events"])
STOPPED = {CampaignStatus.DONE, CampaignStatus.FAILED, CampaignStatus.CANCELLED,
           CampaignStatus.PAUSED}  # fmt: skip


def _driver_progress(name: str) -> dict | None:
    import ray

    driver = find_driver(name)
    if driver is None:
        return None
    try:
        snapshot = ray.get(driver.progress.remote(), timeout=5)
    except Exception:  # the driver is ending or gone: the store tells the rest
        return None
    return {"round": snapshot.round, "stage": snapshot.stage, "done": snapshot.done,
            "total": snapshot.total, "loss": snapshot.loss, "flagged": snapshot.flagged,
            "win_rate": snapshot.win_rate, "waiting": snapshot.waiting}  # fmt: skip


@in_store_thread
def _stored(state: State, name: str) -> tuple[CampaignOut, list[RoundOut]]:
    with state.sessions() as session:
        found = campaign_by_name(session, name)
        if found is None:  # deleted while followed
            raise LookupError(name)
        campaign = campaign_out(session, found, queue_positions(session))
        summaries = state.finished.round_summaries(session, found.id)
        return campaign, [RoundOut.model_validate(s) for s in summaries]


async def _look(state: State, name: str) -> tuple[CampaignOut, list[RoundOut], Progress, bool]:
    campaign, rounds = await _stored(state, name)
    live = await run_in_threadpool(_driver_progress, name)  # Ray's, not the store's: apart
    current = next((r for r in rounds if r.status != RoundStatus.DONE), None)
    progress = Progress(
        status=campaign.status,
        **(live or {"round": current.index if current else None,
                    "stage": current.stage.value if current else None,
                    "waiting": campaign.waiting}),
    )  # fmt: skip
    return campaign, rounds, progress, live is not None


@router.get("/events", response_class=EventSourceResponse, responses=problems(404))
async def events(
    found: CampaignRow, state: State, request: Request
) -> AsyncIterator[ServerSentEvent]:
    """Follow the campaign until it stops (done, failed, cancelled or paused, with its
    driver gone); a campaign that is pending or queued is followed until it runs and
    stops."""
    name = found.name
    sent_campaign, sent_rounds, sent_progress = None, {}, None
    while not await request.is_disconnected():
        try:
            campaign, rounds, progress, driving = await _look(state, name)
        except LookupError:
            return
        if campaign.status != sent_campaign:
            sent_campaign = campaign.status
            yield ServerSentEvent(event="campaign", data=campaign.model_dump(mode="json"))
        for row in rounds:
            if sent_rounds.get(row.index) != row:
                sent_rounds[row.index] = row
                yield ServerSentEvent(event="round", data=row.model_dump(mode="json"))
        if progress != sent_progress:
            sent_progress = progress
            yield ServerSentEvent(event="progress", data=progress.model_dump(mode="json"))
        if campaign.status in STOPPED and not driving:
            yield ServerSentEvent(event="end", data=campaign.model_dump(mode="json"))
            return
        await asyncio.sleep(state.settings.poll_s)
