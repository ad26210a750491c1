import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

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


HEAD = "0008"


def test_migrations_and_models_agree(db_url):
    upgrade(db_url)
    assert schema_differences(db_url) == []


def test_upgrade_downgrade_upgrade(db_url):
    upgrade(db_url)
    assert current_revision(db_url) == HEAD
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
    assert db("current") == HEAD
    db("downgrade", "base")
    assert db("current") == "none"


def test_0004_and_0005_keep_earlier_evaluations_and_leave_their_new_metrics_null(db_url):
    upgrade(db_url, "0003")
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO campaign (id, name, config, status, created_at, updated_at) "
                "VALUES (1, 'old', '{}', 'done', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            connection.execute(text(
                'INSERT INTO round (id, campaign_id, "index", status, stage, created_at) '
                "VALUES (1, 1, 0, 'done', 'done', CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            connection.execute(text(
                "INSERT INTO eval_run (id, round_id, eval_set, annotator, reference, win_rate, "
                "created_at) VALUES (1, 1, 'builtin_held_out', 'rules', 'round 0', 50.0, "
                "CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            connection.execute(text(
                "INSERT INTO eval_item (eval_run_id, instruction, instruction_sha256, output, "
                "reference_output, preference) VALUES (1, 'q', 'sha', 'o', 'o', 1.5)"
            ))  # fmt: skip
        upgrade(db_url)
        with engine.connect() as connection:
            item = connection.execute(text(
                "SELECT preference, finish_reason, constraints, strict_met, loose_met "
                "FROM eval_item"
            )).one()  # fmt: skip
            run = connection.execute(text(
                "SELECT win_rate, prompt_strict, prompt_loose, instruction_strict, "
                "instruction_loose, truncated, decisive_win_rate, mcnemar_b, mcnemar_c, "
                "mcnemar_p FROM eval_run"
            )).one()  # fmt: skip
        assert tuple(item) == (1.5, None, None, None, None)
        assert tuple(run) == (50.0,) + (None,) * 9
        with engine.connect() as connection:
            added = connection.execute(text(
                "SELECT position, dataset, annotation_error, discrete_win_rate, "
                "lc_standard_error, lc_glm, lc_missing, annotator_version, eval_set_sha256 "
                "FROM eval_item, eval_run, campaign"
            )).one()  # fmt: skip
        assert tuple(added) == (None,) * 9
        downgrade(db_url, "0003")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT win_rate FROM eval_run")).scalar() == 50.0
            columns = {c["name"] for c in inspect(connection).get_columns("eval_item")}
        assert "strict_met" not in columns and "preference" in columns
    finally:
        engine.dispose()


def test_0006_queues_campaigns_and_its_downgrade_returns_queued_ones_to_pending(db_url):
    upgrade(db_url, "0005")
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO campaign (id, name, config, status, created_at, updated_at) "
                "VALUES (1, 'old', '{}', 'done', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ))  # fmt: skip
            connection.execute(text(
                'INSERT INTO round (id, campaign_id, "index", status, stage, created_at) '
                "VALUES (1, 1, 0, 'done', 'done', CURRENT_TIMESTAMP)"
            ))  # fmt: skip
        upgrade(db_url)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT queued_at, error FROM campaign")).one() == (
                None, None,
            )  # fmt: skip
            connection.execute(text("UPDATE campaign SET status = 'queued'"))
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE campaign SET status = 'waiting'"))
        downgrade(db_url, "0005")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT status FROM campaign")).scalar() == "pending"
            assert connection.execute(text("SELECT count(*) FROM round")).scalar() == 1
    finally:
        engine.dispose()
