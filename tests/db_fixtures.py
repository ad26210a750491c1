"""Database fixtures: a test using them runs twice, on a SQLite file and on a fresh
PostgreSQL database (127.0.0.1:5432, created for the test and dropped after). An
unreachable PostgreSQL fails the run: it is part of the suite, not an optional extra."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from store.engine import make_engine, session_factory
from store.schema import upgrade

ADMIN_URL = os.environ.get(
    "CUTLOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=5):
            pass
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {ADMIN_URL} ({error}); .ci/run starts it")
    return ADMIN_URL


@contextmanager
def fresh_database(request, kind: str, directory: Path) -> Iterator[str]:
    """A new empty database of `kind` ("sqlite": a file in `directory`), dropped after."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'cutloop.db'}"
        return
    with postgres_database(request) as url:
        yield url


@contextmanager
def postgres_database(request, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database (a copy of `template`, a database URL, when given),
    dropped after."""
    admin = request.getfixturevalue("postgres_server")
    name = f"cutloop_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template else ""
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# A test whose behaviour does not depend on the store runs on SQLite alone: each store's
# own behaviour (transactions, upserts, locking, commit points) is proven by the tests
# that run on both, as `db_url` runs them by default.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> Iterator[str]:
    with fresh_database(request, request.param, tmp_path) as url:
        yield url


@pytest.fixture
def engine(db_url) -> Iterator[Engine]:
    upgrade(db_url)
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine) -> sessionmaker[Session]:
    return session_factory(engine)
