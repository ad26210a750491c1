"""Creating, pausing and cancelling campaigns over HTTP, errors as 4xx naming the field or
id with stored data left intact, and the bearer token: on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiSettings
from tests.db_fixtures import sqlite_only

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "campaigns" / "demo-cpu.yaml"
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture
def settings(db_url, tmp_path, ray_local) -> ApiSettings:
    return ApiSettings(database_url=db_url, home=str(tmp_path / "home"), poll_s=0.2)


@pytest.fixture
def client(settings):
    with TestClient(create_app(settings)) as served:
        yield served


def test_a_campaign_is_created_from_yaml_or_json_and_not_run(client):
    created = client.post("/api/v1/campaigns", content=DEMO.read_text(), headers=YAML)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert (campaign["name"], campaign["status"], campaign["rounds"]) == ("demo-cpu", "pending", 3)
    assert campaign["config"]["cut"]["lambda"] == 2.0  # stored by alias, as `cutloop run` does
    again = client.post("/api/v1/campaigns", json=campaign["config"])
    assert again.status_code == 200 and again.json()["created_at"] == campaign["created_at"]
    other = client.post("/api/v1/campaigns", json={**campaign["config"], "prompts_per_round": 7})
    assert other.status_code == 409 and "stored with other settings" in other.json()["detail"]
    assert client.get("/api/v1/campaigns/demo-cpu").json()["config"] == campaign["config"]


@sqlite_only  # the route's checks
def test_an_invalid_config_is_a_422_naming_the_field_and_value(client):
    response = client.post("/api/v1/campaigns", json={"name": "bad", "cut": {"lambda": -1}})
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "cut", "lambda"] and error["input"] == -1
    unknown = client.post("/api/v1/campaigns", json={"name": "bad", "rounds": 1, "roundz": 2})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "roundz"]
    broken = client.post("/api/v1/campaigns", content="name: [unclosed", headers=YAML)
    assert broken.status_code == 422 and "invalid YAML" in broken.json()["detail"][0]["msg"]
    listed = client.post("/api/v1/campaigns", json=[1, 2])
    assert listed.status_code == 422 and "mapping" in listed.json()["detail"][0]["msg"]
    assert client.get("/api/v1/campaigns").json() == []


@sqlite_only  # the route's checks
def test_a_campaign_its_judge_cannot_judge_is_a_422_saying_what_to_change(client, tmp_path):
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"instruction": "Write a poem."}\n')
    config = {"name": "plain", "instructions": {"kind": "file", "path": str(plain)}}
    response = client.post("/api/v1/campaigns", json=config)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["msg"].startswith(f"judge: {{kind: rules}} cannot judge {plain}: 1 of its 1")
    assert client.get("/api/v1/campaigns").json() == []


@sqlite_only  # the route's checks
def test_pause_and_cancel_say_why_they_cannot_and_cancel_is_final(client):
    client.post("/api/v1/campaigns", content=DEMO.read_text(), headers=YAML)
    paused = client.post("/api/v1/campaigns/demo-cpu/pause")
    assert paused.status_code == 409 and "pending" in paused.json()["detail"]
    cancelled = client.post("/api/v1/campaigns/demo-cpu/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    relaunch = client.post("/api/v1/campaigns/demo-cpu/launch")
    assert relaunch.status_code == 409 and "cancelled" in relaunch.json()["detail"]
    assert client.post("/api/v1/campaigns/nope/launch").status_code == 404
    assert client.post("/api/v1/campaigns/nope/pause").status_code == 404


@sqlite_only  # the route's checks
def test_a_campaign_larger_than_the_cluster_is_refused_at_launch(client):
    huge = {"name": "huge", "trainer": {"memory_gb": 100000}}
    assert client.post("/api/v1/campaigns", json=huge).status_code == 201
    response = client.post("/api/v1/campaigns/huge/launch")
    assert response.status_code == 422
    assert "trainer.memory_gb=100000" in response.json()["detail"][0]["msg"]
    assert client.get("/api/v1/campaigns/huge").json()["status"] == "pending"


@sqlite_only  # the route's checks
def test_with_a_token_every_mutating_route_needs_it_and_reads_stay_open(settings, monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-secret-value")
    guarded = settings.model_copy(update={"token": "s3cret"})
    with TestClient(create_app(guarded)) as client:
        config = {"name": "guarded", "judge": {"kind": "openai", "api_key_env": "JUDGE_KEY"}}
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = client.post("/api/v1/campaigns", json=config, headers=headers)
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert client.get("/api/v1/campaigns").json() == []
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/api/v1/campaigns", json=config, headers=good).status_code == 201
        for route in ("launch", "resume", "pause", "cancel"):
            assert client.post(f"/api/v1/campaigns/guarded/{route}").status_code == 401
        shown = client.get("/api/v1/campaigns/guarded").text
        assert "JUDGE_KEY" in shown and "sk-secret-value" not in shown


def test_serve_refuses_an_address_other_machines_reach_without_a_token(tmp_path):
    cutloop = str(Path(sys.executable).parent / "cutloop")
    env = {k: v for k, v in os.environ.items() if k != "CUTLOOP_API_TOKEN"}
    done = subprocess.run([cutloop, "serve", "--host", "0.0.0.0"], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip
    assert done.returncode == 2
    assert "CUTLOOP_API_TOKEN" in done.stderr and "0.0.0.0" in done.stderr
