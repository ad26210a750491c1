"""The API over a real store and a real Ray: one finished tiny campaign per store (a
module's read-only tests share it), and apps served in-process or by uvicorn on a port."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiSettings
from orchestrator.campaign_run import run_campaign
from store.models import CampaignStatus
from tests.db_fixtures import fresh_database
from tests.orchestrator.campaigns import save_tiny_policy, tiny_campaign

FINISHED = "finished"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def finished_store(request, tmp_path_factory, ray_local) -> Iterator[ApiSettings]:
    """A store holding one finished two-round tiny campaign, named FINISHED."""
    directory = tmp_path_factory.mktemp(f"api-{request.param}")
    with (
        fresh_database(request, request.param, directory) as url,
        pytest.MonkeyPatch.context() as env,
    ):
        env.setenv("CUTLOOP_HOME", str(directory / "home"))
        env.setenv("CUTLOOP_DATABASE_URL", url)
        policy = save_tiny_policy(directory / "policy")
        # a random policy's p_al/p_mis hovers around 1: λ = 1 flags about half the tokens
        config = tiny_campaign(FINISHED, policy, rounds=2, cut={"lambda": 1.0})
        outcome = run_campaign(config)
        assert outcome.status == CampaignStatus.DONE, outcome.error
        yield ApiSettings(database_url=url, home=str(directory / "home"), poll_s=0.2)


@pytest.fixture
def client(finished_store) -> Iterator[TestClient]:
    with TestClient(create_app(finished_store)) as served:
        yield served


@contextmanager
def served_on_a_port(app: FastAPI, deadline_s: float = 30.0) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, as `cutloop serve` does."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + deadline_s
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, f"uvicorn did not start within {deadline_s} s"
        time.sleep(0.05)  # polling a flag, under a deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=deadline_s)
