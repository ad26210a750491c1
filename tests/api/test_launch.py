"""Campaigns launched over HTTP run in detached driver actors on the Ray cluster: followed
to their end through the event stream, untouched by a server restart, resumed after
their driver died, and queued while the cluster has no room."""

from __future__ import annotations

from io import StringIO

import ray
from fastapi.testclient import TestClient
from rich.console import Console

from api.app import create_app
from cut.memory import GB
from orchestrator.campaign_run import run_campaign, show_status
from orchestrator.driver import runner_is_gone
from orchestrator.launcher import find_driver
from store.models import Stage
from tests.api.launched import config_of, follow, round_holder, stored_counts, wait_until
from tests.db_fixtures import sqlite_only
from tests.orchestrator.campaigns import tiny_campaign


def test_a_launched_campaign_is_followed_to_its_end_through_the_event_stream(
    launch_settings, policy, db_url
):
    with TestClient(create_app(launch_settings)) as client:
        client.post("/api/v1/campaigns", json=config_of("live", policy, rounds=2))
        launched = client.post("/api/v1/campaigns/live/launch")
        assert launched.status_code == 202 and launched.json()["status"] in ("queued", "running")
        again = client.post("/api/v1/campaigns/live/launch")
        assert again.status_code == 409
        wait_until(lambda: find_driver("live") is not None, "the driver started")
        beside = run_campaign(tiny_campaign("live", policy, rounds=2))  # `cutloop run`
        assert beside.error == "campaign live is already running on this Ray cluster"
        events = list(follow(client, "live"))
        stages = {data["stage"] for event, data in events if event == "progress"}
        # polled every 0.2 s: the tiny policy's generate and judge can come and go between
        # two looks, its training (load, steps, save) takes seconds
        assert "train" in stages and stages <= {s.value for s in Stage} | {"starting", None}
        done = {data["index"] for event, data in events
                if event == "round" and data["status"] == "done"}  # fmt: skip
        assert done == {0, 1, 2}
        assert events[-1][0] == "end" and events[-1][1]["status"] == "done"
        assert client.get("/api/v1/campaigns/live").json()["rounds_done"] == 2
    wait_until(lambda: find_driver("live") is None, "the driver ending itself", 30)
    assert stored_counts(db_url) == {0: (0, 0), 1: (6, 1), 2: (6, 1)}
    shown = StringIO()
    show_status("live", Console(file=shown, width=200))
    assert "live — done" in shown.getvalue()


@sqlite_only
def test_a_server_restart_leaves_a_campaign_running_and_a_dead_driver_is_resumed(
    launch_settings, policy, db_url
):
    with TestClient(create_app(launch_settings)) as client:
        client.post("/api/v1/campaigns", json=config_of("durable", policy, rounds=2))
        assert client.post("/api/v1/campaigns/durable/launch").status_code == 202
        wait_until(lambda: client.get("/api/v1/campaigns/durable").json()["status"] == "running",
                   "the campaign running")  # fmt: skip
    # the server is gone; the detached driver is not
    driver = find_driver("durable")
    assert driver is not None
    with TestClient(create_app(launch_settings)) as client:
        assert client.get("/api/v1/campaigns/durable").json()["status"] == "running"
        assert client.post("/api/v1/campaigns/durable/launch").status_code == 409
        wait_until(lambda: client.get("/api/v1/campaigns/durable/rounds/1").status_code == 200,
                   "round 1 started")  # fmt: skip
        holder = wait_until(lambda: round_holder(db_url), "a round claimed")
        ray.kill(driver, no_restart=True)
        wait_until(lambda: find_driver("durable") is None and runner_is_gone(holder),
                   "the driver's process gone", 60)  # fmt: skip
        assert client.get("/api/v1/campaigns/durable").json()["status"] == "running"
        resumed = client.post("/api/v1/campaigns/durable/launch")
        assert resumed.status_code == 202, resumed.text
        events = list(follow(client, "durable"))
        assert events[-1][1]["status"] == "done" and events[-1][1]["rounds_done"] == 2
    assert stored_counts(db_url) == {0: (0, 0), 1: (6, 1), 2: (6, 1)}


@sqlite_only
def test_a_campaign_without_room_beside_a_running_one_waits_in_the_queue(launch_settings, policy):
    room_gb = ray.cluster_resources()["memory"] / GB
    big = {"trainer": {"memory_gb": round(room_gb * 0.6, 1)}, "rounds": 0}
    with TestClient(create_app(launch_settings)) as client:
        for name in ("first", "second"):
            client.post("/api/v1/campaigns", json=config_of(name, policy, **big))
            assert client.post(f"/api/v1/campaigns/{name}/launch").status_code == 202
        wait_until(lambda: client.get("/api/v1/campaigns/first").json()["status"] != "queued",
                   "the first campaign started")  # fmt: skip
        queue = client.get("/api/v1/queue").json()
        assert [(c["name"], c["queue_position"]) for c in queue] == [("second", 1)]
        first_end = list(follow(client, "first"))[-1][1]
        assert first_end["status"] == "done"
        second = list(follow(client, "second"))
        assert second[-1][1]["status"] == "done"
        assert client.get("/api/v1/queue").json() == []
        first_done_at = client.get("/api/v1/campaigns/first").json()["updated_at"]
        second_began = client.get("/api/v1/campaigns/second/rounds/0").json()["stages"][0]
        assert second_began["started_at"] >= first_done_at  # held until the first ended


@sqlite_only
def test_a_launched_campaign_that_cannot_start_fails_with_the_reason(
    launch_settings, policy, tmp_path
):
    missing = tmp_path / "no-such-instructions.jsonl"
    missing.write_text('{"instruction": "Write."}\n')  # created while it exists, then lost
    judge = {"kind": "openai", "base_url": "http://127.0.0.1:9", "model": "m"}
    config = config_of(
        "unstartable", policy, instructions={"kind": "file", "path": str(missing)}, judge=judge
    )
    with TestClient(create_app(launch_settings)) as client:
        assert client.post("/api/v1/campaigns", json=config).status_code == 201
        missing.unlink()
        assert client.post("/api/v1/campaigns/unstartable/launch").status_code == 202
        end = list(follow(client, "unstartable"))[-1][1]
        assert end["status"] == "failed" and str(missing) in end["error"]
        assert "\n" not in end["error"]
        # a failed campaign launches again, its old reason cleared until it fails anew
        assert client.post("/api/v1/campaigns/unstartable/launch").status_code == 202
        assert client.get("/api/v1/campaigns/unstartable").json()["error"] is None
        assert list(follow(client, "unstartable"))[-1][1]["status"] == "failed"
