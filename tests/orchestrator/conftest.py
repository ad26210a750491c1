"""Fixtures of the campaign tests."""

import pytest


@pytest.fixture
def store_env(db_url, tmp_path, monkeypatch, ray_local):
    """The campaign's home and database, seen by this process and the actors."""
    monkeypatch.setenv("CUTLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTLOOP_DATABASE_URL", db_url)
    return tmp_path / "home"
