"""Bearer-token auth of mutating routes: when the server has a token (CUTLOOP_API_TOKEN),
every POST must present it; reads stay open, as Ray's dashboard and Prometheus expect."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

bearer = HTTPBearer(auto_error=False, description="CUTLOOP_API_TOKEN, when the server has one")


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    expected = request.app.state.api.settings.token
    if expected is None:
        return
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            401,
            "this route needs the server's token: Authorization: Bearer $CUTLOOP_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
