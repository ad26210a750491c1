"""Dependencies of the routes: a store session per request, and the campaign or round a
path names (404 naming it when there is none)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from sqlalchemy.orm import Session

from api.state import ApiState
from orchestrator.lifecycle import UnknownCampaign, named
from store.browse import round_of
from store.models import Campaign, Round


def api_state(request: Request) -> ApiState:
    return request.app.state.api


State = Annotated[ApiState, Depends(api_state)]


def session(state: State) -> Iterator[Session]:
    with state.sessions() as opened:
        yield opened


DbSession = Annotated[Session, Depends(session)]
CampaignName = Annotated[str, Path(min_length=1, max_length=200, description="campaign name")]


def named_or_404(session: Session, name: str) -> Campaign:
    try:
        return named(session, name)
    except UnknownCampaign as error:
        raise HTTPException(404, str(error)) from None


def campaign(name: CampaignName, db: DbSession) -> Campaign:
    return named_or_404(db, name)


CampaignRow = Annotated[Campaign, Depends(campaign)]


def round_row(
    found: CampaignRow, db: DbSession, index: Annotated[int, Path(ge=0, description="round")]
) -> Round:
    round_ = round_of(db, found.id, index)
    if round_ is None:
        raise HTTPException(404, f"campaign {found.name!r} has no round {index}")
    return round_


RoundRow = Annotated[Round, Depends(round_row)]
