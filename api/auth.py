"""Bearer tokens. The operator's (CUTLOOP_API_TOKEN, when the server has one) guards every
POST that launches, changes or stops campaigns; reads stay open, as Ray's dashboard and
Prometheus expect. Annotators have tokens of their own (`cutloop annotators add`): one
judges answers and does nothing else, so it is refused on operator routes even on a
server without an operator token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import DbSession
from api.store_threads import in_store_thread
from store.annotators import TOKEN_PREFIX, annotator_of, is_annotator_token

bearer = HTTPBearer(
    auto_error=False,
    description="CUTLOOP_API_TOKEN on operator routes, when the server has one; an "
    "annotator's token (cutloop annotators add) on judging routes",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _given(credentials: HTTPAuthorizationCredentials | None) -> str:
    return credentials.credentials if credentials is not None else ""


@in_store_thread
def require_token(request: Request, credentials: Credentials, db: DbSession) -> None:
    expected = request.app.state.api.settings.token
    given = _given(credentials)
    if expected is not None and hmac.compare_digest(given.encode(), expected.encode()):
        return
    if given.startswith(TOKEN_PREFIX) and is_annotator_token(db, given):
        raise HTTPException(
            403,
            "an annotator's token judges answers and nothing else; this route needs "
            "the operator's token (CUTLOOP_API_TOKEN)",
        )
    if expected is None:
        return
    raise HTTPException(
        401,
        "this route needs the server's token: Authorization: Bearer $CUTLOOP_API_TOKEN",
        headers={"WWW-Authenticate": "Bearer"},
    )


@in_store_thread
def require_annotator(credentials: Credentials, db: DbSession) -> str:
    """The name of the annotator whose token the request bears (looked up in the
    request's own session: a request holds one connection of the pool, never two)."""
    given = _given(credentials)
    name = annotator_of(db, given) if given.startswith(TOKEN_PREFIX) else None
    if name is None:
        raise HTTPException(
            401,
            "this route needs an annotator's token: Authorization: Bearer <token from "
            "`cutloop annotators add NAME` or POST /api/v1/annotators>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return name


AnnotatorName = Annotated[str, Depends(require_annotator)]
