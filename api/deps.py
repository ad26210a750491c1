"""Dependencies of the routes: a store session per request, and the campaign or round a
path names (404 naming it when there is none)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, TypeVar

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from api.state import ApiState
from orchestrator.lifecycle import UnknownCampaign, named
from store.browse import round_named
from store.models import Campaign, Round

T = TypeVar("T")


async def api_state(request: Request) -> ApiState:  # async: no thread for a lookup
    return request.app.state.api


State = Annotated[ApiState, Depends(api_state)]


async def session(state: State) -> AsyncIterator[Session]:
    """Async, so FastAPI hands it over without two trips to its thread pool (entering
    and leaving). It connects on its first query, in a dependency's or the route's
    thread, and is closed once the response is built (scope "function"), not after it
    is sent."""
    with state.sessions() as opened:
        yield opened


DbSession = Annotated[Session, Depends(session, scope="function")]
CampaignName = Annotated[str, Path(min_length=1, max_length=200, description="campaign name")]


def named_or_404(session: Session, name: str) -> Campaign:
    try:
        return named(session, name)
    except UnknownCampaign as error:
        raise HTTPException(404, str(error)) from None


def released(db: Session, row: T) -> T:
    """`row`, read in this dependency's own trip to the thread pool, with its connection
    given back: a request waiting for the route's thread holds none."""
    db.commit()  # ends the read; expire_on_commit is off, so `row` stays loaded
    return row


def campaign(name: CampaignName, db: DbSession) -> Campaign:
    return released(db, named_or_404(db, name))


CampaignRow = Annotated[Campaign, Depends(campaign)]


def round_row(
    name: CampaignName,
    db: DbSession,
    index: Annotated[int, Path(ge=0, le=2**31 - 1, description="round")],
) -> Round:
    """The round in one query (a page of judgments needs no campaign row of its own)."""
    round_ = round_named(db, name, index)
    if round_ is None:
        found = named_or_404(db, name)
        raise HTTPException(404, f"campaign {found.name!r} has no round {index}")
    return released(db, round_)


RoundRow = Annotated[Round, Depends(round_row)]
