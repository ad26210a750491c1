import os
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from store.engine import make_engine
from store.models import Base
from store.schema import current_revision, downgrade, upgrade

CUTLOOP = str(Path(sys.executable).parent / "cutloop")


def schema_differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrations_and_models_agree(db_url):
    upgrade(db_url)
    assert schema_differences(db_url) == []


def test_upgrade_downgrade_upgrade(db_url):
    upgrade(db_url)
    assert current_revision(db_url) == "0003"
    downgrade(db_url, "base")
    assert current_revision(db_url) is None
    engine = make_engine(db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(db_url)
    assert schema_differences(db_url) == []


def test_db_commands(db_url):
    env = {**os.environ, "CUTLOOP_DATABASE_URL": db_url}

    def db(*args: str) -> str:
        done = subprocess.run([CUTLOOP, "db", *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert db("current") == "none"
    db("upgrade")
    assert db("current") == "0003"
    db("downgrade", "base")
    assert db("current") == "none"
