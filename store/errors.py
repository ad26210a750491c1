"""Database errors turned into messages that name the entity and field."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session


class StoreError(ValueError):
    """A write the store refused; nothing of the transaction was committed."""


class ConflictError(StoreError):
    """An upsert met a stored row with a different value for the same key."""


_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (?P<name>\w+)")
_SQLITE_FIELDS = re.compile(r"constraint failed: (?P<fields>[\w.]+(?:, [\w.]+)*)")


def _location(error: IntegrityError, table: Table) -> str:
    """'generation.text' or 'generation (constraint name)': where the write was refused."""
    diag = getattr(error.orig, "diag", None)  # psycopg gives structured details
    if diag is not None and diag.table_name:
        if diag.column_name:
            return f"{diag.table_name}.{diag.column_name}"
        return f"{diag.table_name} ({diag.constraint_name})"
    text = str(error.orig)
    if match := _SQLITE_CHECK.search(text):
        return f"{table.name} ({match['name']})"
    if match := _SQLITE_FIELDS.search(text):
        return match["fields"]
    if "FOREIGN KEY" in text:  # SQLite does not say which key
        keys = ", ".join(f"{fk.parent.name} -> {fk.column.table.name}" for fk in table.foreign_keys)
        return f"{table.name} ({keys})"
    return table.name


def integrity_error(error: IntegrityError, table: Table) -> StoreError:
    return StoreError(f"{_location(error, table)}: {str(error.orig).splitlines()[0]}")


@contextmanager
def refusals_named(table: Table) -> Iterator[None]:
    """Raise a database refusal inside the block as a StoreError naming `table`'s field."""
    try:
        yield
    except IntegrityError as error:
        raise integrity_error(error, table) from None


def flush(session: Session, model: type) -> None:
    """session.flush(), with a refused write reported against `model`'s table."""
    with refusals_named(model.__table__):  # type: ignore[attr-defined]
        session.flush()
