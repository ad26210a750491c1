"""`cutloop annotators`: the people who may judge answers, each with a token of their own
(judge kinds human and review; docs/judging-by-people.md)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from orchestrator.progress import stderr_console

annotators_app = typer.Typer(
    help="People who judge answers in the dashboard or over the API (judge kind human or "
    "review), each with a token apart from CUTLOOP_API_TOKEN.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
Name = Annotated[str, typer.Argument(help="The annotator's name, as stored with their judgments.")]


@contextmanager
def _store() -> Iterator[Session]:
    from store.engine import make_engine, session_factory
    from store.schema import upgrade

    upgrade()
    engine = make_engine()
    try:
        with session_factory(engine).begin() as session:
            yield session
    finally:
        engine.dispose()


def _refused(error: Exception) -> typer.Exit:
    stderr_console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


@annotators_app.command("add")
def add(name: Name) -> None:
    """Add an annotator and print their token, which is shown once.

    Only the token's sha256 is stored. A revoked annotator gets a new token."""
    from store.annotators import add_annotator
    from store.errors import StoreError

    try:
        with _store() as session:
            token = add_annotator(session, name)
    except StoreError as error:
        raise _refused(error) from None
    print(token)


@annotators_app.command("list")
def list_() -> None:
    """Every annotator, live or revoked, with when they were added."""
    from store.annotators import list_annotators

    with _store() as session:
        for annotator in list_annotators(session):
            line = f"{annotator.name}  added {annotator.created_at:%Y-%m-%d %H:%M}"
            if annotator.revoked_at is not None:
                line += f"  revoked {annotator.revoked_at:%Y-%m-%d %H:%M}"
            print(line)


@annotators_app.command("revoke")
def revoke(name: Name) -> None:
    """Refuse the annotator's token from now on; their judgments stay stored."""
    from store.annotators import revoke_annotator
    from store.errors import StoreError

    try:
        with _store() as session:
            revoke_annotator(session, name)
    except StoreError as error:
        raise _refused(error) from None
    print(f"annotator {name}: revoked")
