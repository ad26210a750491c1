import sqlite3
import time

from sqlalchemy import text

from store.engine import SQLITE_BUSY_TIMEOUT_MS, database_url, make_engine, session_factory
from store.models import Campaign
from store.schema import upgrade


def test_default_database_is_sqlite_under_cutloop_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CUTLOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("CUTLOOP_HOME", str(tmp_path))
    assert database_url() == f"sqlite:///{tmp_path / 'cutloop.db'}"
    monkeypatch.setenv("CUTLOOP_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql://u@h/db"


def test_a_writer_commits_while_a_reader_holds_its_snapshot(tmp_path):
    """What WAL gives and a rollback journal does not: a commit does not wait for an open
    read transaction (with a journal it waits out the busy timeout, then fails), and the
    reader keeps the snapshot it began with."""
    path = tmp_path / "x.db"
    upgrade(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    sessions = session_factory(engine)
    with sessions.begin() as s:
        s.add(Campaign(name="first", config={}))
    reader = sqlite3.connect(path, isolation_level=None)  # explicit transactions
    reader.execute("BEGIN")
    assert reader.execute("SELECT name FROM campaign").fetchall() == [("first",)]
    started = time.monotonic()
    with sessions.begin() as writer:
        writer.add(Campaign(name="second", config={}))
    assert time.monotonic() - started < SQLITE_BUSY_TIMEOUT_MS / 1000 / 2
    assert reader.execute("SELECT name FROM campaign").fetchall() == [("first",)]
    reader.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM campaign").fetchone() == (2,)
    reader.close()
    engine.dispose()


def test_sqlite_runs_wal_with_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
        assert connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert connection.scalar(text("PRAGMA busy_timeout")) == SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()
