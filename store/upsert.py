"""Idempotent bulk writes: insert what is new, verify what already exists.

A resumed stage writes its rows again; rows whose key is already stored are skipped, but
only if they hold the same values. A different value for the same key is a conflict,
raised with the entity, key and field, never overwritten silently. New rows go in one
batched INSERT ... ON CONFLICT DO NOTHING RETURNING (SQLAlchemy's insertmanyvalues), so
the common path costs one round trip per few hundred rows and no read-back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select, tuple_
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from store.errors import ConflictError, refusals_named
from store.models import Base


def insert_or_verify(
    session: Session,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    where: ColumnElement[bool] | None = None,
) -> list[int]:
    """Insert `rows` of `model`, unique on `key` (a partial index when `where` is given).
    Returns the ids of every row, new or existing, in input order."""
    if not rows:
        return []
    _refuse_repeated_keys(model, rows, key)
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else postgresql_insert
    table = model.__table__
    key_columns = [table.c[name] for name in key]
    statement = (
        insert(model)
        .on_conflict_do_nothing(index_elements=key_columns, index_where=where)
        .returning(table.c.id, *key_columns, sort_by_parameter_order=True)
    )
    # a refused batch raises a StoreError and leaves the caller's transaction usable
    with refusals_named(table), session.begin_nested():
        inserted = session.execute(statement, list(rows)).all()
    ids = {tuple(r[1:]): r[0] for r in inserted}
    missing = [row for row in rows if tuple(row[k] for k in key) not in ids]
    if missing:
        ids |= _verify_existing(session, model, missing, key, where)
    return [ids[tuple(row[k] for k in key)] for row in rows]


def _refuse_repeated_keys(
    model: type[Base], rows: Sequence[Mapping[str, Any]], key: Sequence[str]
) -> None:
    """A key given twice in one batch must carry the same values both times: the insert
    would keep the first row and skip the second unseen."""
    first: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        row_key = tuple(row[k] for k in key)
        earlier = first.setdefault(row_key, row)
        for field, value in row.items():
            if earlier.get(field) != value:
                raise ConflictError(
                    f"{model.__tablename__}.{field}: {dict(zip(key, row_key, strict=True))} "
                    f"is given twice in one batch, with {earlier.get(field)!r} and {value!r}"
                )


def _verify_existing(
    session: Session,
    model: type[Base],
    rows: Sequence[Mapping[str, Any]],
    key: Sequence[str],
    where: ColumnElement[bool] | None,
) -> dict[tuple, int]:
    table = model.__table__
    wanted = {tuple(row[k] for k in key): row for row in rows}
    query = select(table).where(tuple_(*(table.c[k] for k in key)).in_(list(wanted)))
    if where is not None:
        query = query.where(where)
    ids: dict[tuple, int] = {}
    for stored in session.execute(query).mappings():
        stored_key = tuple(stored[k] for k in key)
        given = wanted[stored_key]
        for field, value in given.items():
            if stored[field] != value:
                raise ConflictError(
                    f"{table.name}.{field}: a row with {dict(zip(key, stored_key, strict=True))} "
                    f"is stored with {stored[field]!r}, refusing to overwrite it with {value!r}"
                )
        ids[stored_key] = stored["id"]
    return ids
