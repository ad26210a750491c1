"""The compose stack's own commands, run here as plain processes (no Docker engine): the
Ray head, a worker and the orchestrator's start script, each a Ray node with its own
temp dir and files, the container paths and service names of docker-compose.yml mapped
onto this machine, the store on the local PostgreSQL. The orchestrator launches the
campaign named by CAMPAIGN_CONFIG; killed after its judge calls were paid and restarted,
it resumes without paying them again; started once more, it leaves the finished campaign
alone. A `ray job submit` through the head's job server runs `cutloop run` on the
cluster."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from store.engine import make_engine, session_factory
from store.models import Judgment
from tests.api.launched import stored_counts, wait_until
from tests.db_fixtures import fresh_database
from tests.deploy.stack import BIN, Stack
from tests.judge.fake_openai import FakeOpenAI
from tests.orchestrator.campaigns import (
    count,
    judge_calls,
    openai_judge,
    save_tiny_policy,
    tiny_campaign,
)

CAMPAIGN = "composed"
TOKEN = "a-token"


def _api(stack: Stack, path: str) -> dict | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{stack.api_port}{path}", timeout=5)
    except httpx.TransportError:
        return None
    return answer.json() if answer.status_code == 200 else None


def _status(stack: Stack) -> str | None:
    campaign = _api(stack, f"/api/v1/campaigns/{CAMPAIGN}")
    return campaign["status"] if campaign else None


def _judgments(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with session_factory(engine)() as session:
            return count(session, Judgment)
    finally:
        engine.dispose()


@pytest.fixture
def database(request, tmp_path, postgres_server) -> Iterator[str]:
    with fresh_database(request, "postgresql", tmp_path) as url:
        yield url


def test_the_stack_launches_resumes_and_never_repeats_its_campaign(
    tmp_path, database, compose_stack
):
    policy = save_tiny_policy(tmp_path / "policy")
    marker = tmp_path / "failpoint"
    campaign_file = tmp_path / "campaign.yaml"
    settings = {"CUTLOOP_API_TOKEN": TOKEN, "CAMPAIGN_CONFIG": str(campaign_file)}
    with FakeOpenAI() as judge, compose_stack(tmp_path, database, settings) as running:
        config = tiny_campaign(CAMPAIGN, policy, judge=openai_judge(judge.base_url))
        campaign_file.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))

        running.start("ray-head")
        wait_until(lambda: running.healthcheck("ray-head"), "the head's healthcheck", 120)
        running.start("worker")  # joined before the next node starts: their ports differ
        wait_until(lambda: "Ray runtime started" in running.log("worker").read_text(),
                   "the worker node up", 120)  # fmt: skip
        serve = ["--port", str(running.api_port)]
        first = running.start("orchestrator", serve, CUTLOOP_FAILPOINT="judge",
                              CUTLOOP_FAILPOINT_MARKER=str(marker))  # fmt: skip
        wait_until(marker.exists, "the first round's judge calls paid", 300)
        paid = judge_calls(judge)
        assert paid > 0 and _judgments(database) == 0  # paid, nothing stored yet
        running.stop(first)

        second = running.start("orchestrator", serve)  # the container restarted
        wait_until(lambda: _status(running) == "done", "the campaign resumed to its end", 300)
        assert judge_calls(judge) == _judgments(database)  # every answer judged once
        assert stored_counts(database) == {0: (0, 0), 1: (6, 1), 2: (6, 1)}
        health = _api(running, "/health")
        assert health and health["status"] == "ok", health

        node_home = tmp_path / "worker" / "node-home"
        assert list(node_home.rglob("checkpoints/v2/*.safetensors"))  # the trainer's node
        orchestrator_home = tmp_path / "orchestrator" / "home"
        assert (orchestrator_home / "campaigns" / CAMPAIGN / "judge-cache.jsonl").is_file()
        assert not list(orchestrator_home.rglob("*.safetensors"))

        running.stop(second)
        running.start("orchestrator", serve)  # and once more: nothing to do
        wait_until(lambda: f"campaign {CAMPAIGN}: done" in running.log("orchestrator").read_text(),
                   "the restarted server leaving the finished campaign", 120)  # fmt: skip
        assert stored_counts(database) == {0: (0, 0), 1: (6, 1), 2: (6, 1)}

        submitted = _submit_job(running, tmp_path, policy, judge.base_url)
        assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
        assert "submitted-demo — done" in submitted.stdout


def _submit_job(running: Stack, tmp_path: Path, policy: Path, judge_url: str):
    """`ray job submit` to the head's job server: `cutloop run` as the job's entrypoint
    joins the cluster through $RAY_ADDRESS, which Ray sets for the job."""
    config = tiny_campaign("submitted-demo", policy, rounds=0, judge=openai_judge(judge_url))
    campaign_file = tmp_path / "submitted.yaml"
    campaign_file.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    job_env = {"CUTLOOP_HOME": str(tmp_path / "job-home"),
               "CUTLOOP_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}"}  # fmt: skip
    command = [str(BIN / "ray"), "job", "submit", "--address",
               f"http://127.0.0.1:{running.dashboard_port}",
               "--runtime-env-json", json.dumps({"env_vars": job_env}),
               "--", str(BIN / "cutloop"), "run", str(campaign_file)]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}

    def accepted():
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
        # the head's job agent registers after the head is up: Ray says to try again
        return None if "No available agent" in done.stderr else done

    return wait_until(accepted, "the job server accepting the job", 120)
