"""Annotators: people allowed to judge answers, each with a bearer token of their own,
apart from the operator's CUTLOOP_API_TOKEN. Only a token's sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import StoreError
from store.models import Annotator, utcnow

TOKEN_PREFIX = "cla_"  # tells an annotator token from the operator's in a log or a form


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_annotator(session: Session, name: str) -> str:
    """Add `name` (or give a revoked one a new token) and return the token: it is not
    stored and cannot be shown again."""
    if not name or len(name) > 100 or name != name.strip():
        raise StoreError(f"annotator name {name!r}: 1 to 100 characters, no outer spaces")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    found = session.scalar(select(Annotator).where(Annotator.name == name))
    if found is not None and found.revoked_at is None:
        raise StoreError(f"annotator {name!r} exists; revoke it first to issue a new token")
    if found is None:
        session.add(Annotator(name=name, token_sha256=token_sha256(token)))
    else:
        found.token_sha256, found.revoked_at = token_sha256(token), None
    session.flush()
    return token


def annotator_of(session: Session, token: str) -> str | None:
    """The name of the live annotator whose token this is, else None."""
    return session.scalar(
        select(Annotator.name).where(
            Annotator.token_sha256 == token_sha256(token), Annotator.revoked_at.is_(None)
        )
    )


def is_annotator_token(session: Session, token: str) -> bool:
    """Whether `token` was ever issued to an annotator (revoked ones included)."""
    digest = token_sha256(token)
    return session.scalar(select(Annotator.id).where(Annotator.token_sha256 == digest)) is not None


def list_annotators(session: Session) -> list[Annotator]:
    return list(session.scalars(select(Annotator).order_by(Annotator.name)))


def revoke_annotator(session: Session, name: str) -> None:
    found = session.scalar(select(Annotator).where(Annotator.name == name))
    if found is None or found.revoked_at is not None:
        raise StoreError(f"no live annotator named {name!r}")
    found.revoked_at = utcnow()
