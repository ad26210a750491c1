from sqlalchemy import select, text

from store.engine import SQLITE_BUSY_TIMEOUT_MS, database_url, make_engine, session_factory
from store.models import Campaign
from store.schema import upgrade


def test_default_database_is_sqlite_under_cutloop_home(monkeypatch, tmp_path):
    monkeypatch.delenv("CUTLOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("CUTLOOP_HOME", str(tmp_path))
    assert database_url() == f"sqlite:///{tmp_path / 'cutloop.db'}"
    monkeypatch.setenv("CUTLOOP_DATABASE_URL", "postgresql://u@h/db")
    assert database_url() == "postgresql://u@h/db"


def test_sqlite_runs_wal_with_foreign_keys_and_busy_timeout(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.scalar(text("PRAGMA journal_mode")) == "wal"
        assert connection.scalar(text("PRAGMA foreign_keys")) == 1
        assert connection.scalar(text("PRAGMA busy_timeout")) == SQLITE_BUSY_TIMEOUT_MS
    engine.dispose()


def test_a_reader_is_not_blocked_by_an_open_write_transaction(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        s.add(Campaign(name="committed", config={}))
    writer = sessions()
    writer.begin()
    writer.add(Campaign(name="uncommitted", config={}))
    writer.flush()  # holds SQLite's write lock from here on
    with sessions() as reader:
        names = reader.scalars(select(Campaign.name)).all()
    assert names == ["committed"]
    writer.commit()
    writer.close()
    engine.dispose()
