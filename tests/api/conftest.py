"""The API over a real store and a real Ray: one finished tiny campaign per store and
session, each module browsing its own copy of it, and apps served in-process or by
uvicorn on a port."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import sync_playwright

from api.app import create_app
from api.state import ApiSettings
from orchestrator.campaign_run import run_campaign
from store.models import CampaignStatus
from tests.api.served import FINISHED
from tests.db_fixtures import fresh_database, postgres_database
from tests.orchestrator.campaigns import save_tiny_policy, tiny_campaign


def _finished_campaign(request, kind: str, directory: Path) -> Iterator[str]:
    """A database of `kind` holding one finished two-round tiny campaign, FINISHED."""
    with fresh_database(request, kind, directory) as url:
        with pytest.MonkeyPatch.context() as env:  # only while it runs: the session goes on
            env.setenv("CUTLOOP_HOME", str(directory / "home"))
            env.setenv("CUTLOOP_DATABASE_URL", url)
            policy = save_tiny_policy(directory / "policy")
            # a random policy's p_al/p_mis hovers around 1: λ = 1 flags about half the tokens
            config = tiny_campaign(FINISHED, policy, rounds=2, cut={"lambda": 1.0})
            outcome = run_campaign(config)
        assert outcome.status == CampaignStatus.DONE, outcome.error
        yield url


@pytest.fixture(scope="session")
def finished_sqlite(request, tmp_path_factory, ray_local) -> Iterator[str]:
    yield from _finished_campaign(request, "sqlite", tmp_path_factory.mktemp("finished-sqlite"))


@pytest.fixture(scope="session")
def finished_postgresql(request, tmp_path_factory, ray_local) -> Iterator[str]:
    yield from _finished_campaign(request, "postgresql", tmp_path_factory.mktemp("finished-pg"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def finished_store(request, tmp_path_factory, ray_local) -> Iterator[ApiSettings]:
    """A copy of the finished campaign's database, the module's own to change (the
    campaign runs once per session, on `ray_local`: named here, it sets the tier)."""
    template = request.getfixturevalue(f"finished_{request.param}")
    directory = tmp_path_factory.mktemp(f"api-{request.param}")
    settings = ApiSettings(database_url="", home=str(directory / "home"), poll_s=0.2)
    if request.param == "sqlite":
        source = template.removeprefix("sqlite:///")
        with sqlite3.connect(source) as connection:  # the WAL's pages into the file
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy(source, directory / "cutloop.db")
        yield settings.model_copy(update={"database_url": f"sqlite:///{directory / 'cutloop.db'}"})
        return
    with postgres_database(request, template) as url:
        yield settings.model_copy(update={"database_url": url})


@pytest.fixture
def client(finished_store) -> Iterator[TestClient]:
    with TestClient(create_app(finished_store)) as served:
        yield served


@pytest.fixture
def launch_settings(store_env, db_url) -> ApiSettings:
    """Settings of a server over the test's own store (test_launch, test_autolaunch)."""
    return ApiSettings(database_url=db_url, home=str(store_env), poll_s=0.2)


@pytest.fixture
def policy(tmp_path):
    return save_tiny_policy(tmp_path / "policy")


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium, driven by Playwright."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} not found: `make test` installs Debian's chromium (apt-get)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()
