"""Dependencies of the routes: a store session per request, and the campaign or round a
path names (404 naming it when there is none)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Query, Request
from sqlalchemy.orm import Session

from api.state import ApiState
from api.store_threads import in_store_thread
from orchestrator.lifecycle import UnknownCampaign, named
from store.browse import round_named
from store.models import Campaign, Round


async def api_state(request: Request) -> ApiState:  # async: no thread for a lookup
    return request.app.state.api


State = Annotated[ApiState, Depends(api_state)]


async def session(state: State) -> AsyncIterator[Session]:
    """Async, so FastAPI hands it over without two trips to a thread (entering and
    leaving). It connects on its first query, in a store thread (api.store_threads),
    and is closed once the response is built (scope "function"), not after it is
    sent."""
    with state.sessions() as opened:
        yield opened


DbSession = Annotated[Session, Depends(session, scope="function")]
CampaignName = Annotated[str, Path(min_length=1, max_length=200, description="campaign name")]


def named_or_404(session: Session, name: str) -> Campaign:
    try:
        return named(session, name)
    except UnknownCampaign as error:
        raise HTTPException(404, str(error)) from None


@in_store_thread
def campaign(name: CampaignName, db: DbSession) -> Campaign:
    return named_or_404(db, name)


CampaignRow = Annotated[Campaign, Depends(campaign)]


RoundIndex = Annotated[int, Path(ge=0, le=2**31 - 1, description="round")]
# ids are 32-bit integers in the store: a larger cursor is a 422, not a database's overflow
PageAfter = Annotated[
    int | None, Query(ge=0, le=2**31 - 1, description="the last id of the page before")
]


def round_or_404(session: Session, name: str, index: int) -> Round:
    """The round in one query; a 404 names the campaign or the round that is not there."""
    round_ = round_named(session, name, index)
    if round_ is None:
        found = named_or_404(session, name)
        raise HTTPException(404, f"campaign {found.name!r} has no round {index}")
    return round_


@in_store_thread
def round_row(name: CampaignName, db: DbSession, index: RoundIndex) -> Round:
    return round_or_404(db, name, index)


RoundRow = Annotated[Round, Depends(round_row)]
