"""The campaign a server launches on start (`cutloop serve --launch`, $CAMPAIGN_CONFIG in
the compose stack): what it decides from the store and the cluster, a whole launch that
survives its driver's death without running anything twice, and the one-line refusals
before the server starts."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import ray
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from api.autolaunch import Verdict, decide, store_campaign
from orchestrator.launcher import find_driver
from orchestrator.lifecycle import StateConflict
from store.campaigns import campaign_by_name
from store.models import Campaign, CampaignStatus, Round, utcnow
from tests.api.launched import follow, round_holder, stored_counts, wait_until
from tests.db_fixtures import sqlite_only
from tests.orchestrator.campaigns import tiny_campaign

CUTLOOP = str(Path(sys.executable).with_name("cutloop"))


def _set(sessions, name: str, **values) -> None:
    with sessions.begin() as session:
        session.execute(update(Campaign).where(Campaign.name == name).values(**values))


def _decision(sessions, config):
    with sessions() as session:
        return decide(session, config)


def test_what_a_starting_server_does_follows_the_store_and_the_cluster(store_env, sessions, policy):
    config = tiny_campaign("starts", policy, rounds=2)
    store_campaign(sessions, config)
    store_campaign(sessions, config)  # a restart: the same campaign, stored once
    first = _decision(sessions, config)
    assert (first.verdict, first.reason, first.rounds) == (Verdict.QUEUE, "launching", 2)

    _set(sessions, "starts", status=CampaignStatus.QUEUED)
    assert _decision(sessions, config).verdict == Verdict.WAIT
    for status, words in [
        (CampaignStatus.PAUSED, "POST /api/v1/campaigns/starts/resume"),
        (CampaignStatus.CANCELLED, "cancelled"),
        (CampaignStatus.FAILED, "failed (out of memory)"),
        (CampaignStatus.DONE, "all its 2 rounds ran"),
    ]:
        _set(sessions, "starts", status=status, error="out of memory")
        decision = _decision(sessions, config)
        assert decision.verdict == Verdict.LEAVE and words in decision.reason, decision
    longer = config.model_copy(update={"rounds": 4})  # the file now asks for more
    more = _decision(sessions, longer)
    assert (more.verdict, more.rounds) == (Verdict.QUEUE, 4) and "2 more" in more.reason

    # running, its driver gone: a live lease elsewhere holds it; once that expires, resume
    _set(sessions, "starts", status=CampaignStatus.RUNNING)
    with sessions.begin() as session:
        campaign = campaign_by_name(session, "starts")
        session.add(Round(campaign_id=campaign.id, index=0, claimed_by="elsewhere:1:1",
                          claimed_at=utcnow()))  # fmt: skip
    held = _decision(sessions, config)
    assert held.verdict == Verdict.WAIT and "lease" in held.reason
    with sessions.begin() as session:
        session.execute(update(Round).values(claimed_at=utcnow() - timedelta(minutes=10)))
    resumed = _decision(sessions, config)
    assert resumed.verdict == Verdict.QUEUE and resumed.reason.startswith("resuming")

    # a plan the cluster cannot hold (yet: nodes may still be joining) waits, saying why
    huge = config.model_copy(update={"trainer": config.trainer.model_copy(
        update={"memory_gb": 10_000})})  # fmt: skip
    waiting = _decision(sessions, huge)
    assert waiting.verdict == Verdict.WAIT and "trainer.memory_gb" in waiting.reason


@sqlite_only  # a comparison of settings
def test_another_campaign_under_the_name_is_refused(store_env, sessions, policy):
    store_campaign(sessions, tiny_campaign("taken", policy))
    with pytest.raises(StateConflict, match="'taken' is stored with other settings"):
        store_campaign(sessions, tiny_campaign("taken", policy, prompts_per_round=7))


@sqlite_only
def test_a_server_launches_its_campaign_and_resumes_it_when_its_driver_dies(
    launch_settings, policy, db_url
):
    config = tiny_campaign("served", policy, rounds=2)
    with TestClient(create_app(launch_settings.model_copy(update={"launch": config}))) as client:
        wait_until(lambda: round_holder(db_url), "the launched campaign running")
        wait_until(lambda: client.get("/api/v1/campaigns/served/rounds/1").status_code == 200,
                   "round 1 started")  # fmt: skip
        driver = find_driver("served")
        assert driver is not None
        ray.kill(driver, no_restart=True)  # the server itself goes on: it resumes the campaign
        wait_until(lambda: (new := find_driver("served")) and new._actor_id != driver._actor_id,
                   "the campaign resumed by a new driver")  # fmt: skip
        events = list(follow(client, "served"))
        assert events[-1][1]["status"] == "done" and events[-1][1]["rounds_done"] == 2
    # nothing generated or trained twice
    assert stored_counts(db_url) == {0: (0, 0), 1: (6, 1), 2: (6, 1)}
    # a restarted server finds it done and leaves it
    with TestClient(create_app(launch_settings.model_copy(update={"launch": config}))) as client:
        assert client.get("/api/v1/campaigns/served").json()["status"] == "done"
    assert stored_counts(db_url) == {0: (0, 0), 1: (6, 1), 2: (6, 1)}


def _serve(config_file: Path, home: Path, db_url: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUTLOOP_HOME": str(home), "CUTLOOP_DATABASE_URL": db_url,
           "CAMPAIGN_CONFIG": str(config_file)}  # fmt: skip
    return subprocess.run(
        [CUTLOOP, "serve", "--port", "0"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@sqlite_only
def test_a_bad_campaign_file_or_a_taken_name_stops_the_server_with_one_line(
    store_env, sessions, policy, tmp_path, db_url
):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: broken\npolicy: x\nrounds: -1\n")
    refused = _serve(bad, store_env, db_url)
    assert refused.returncode == 2
    assert "CAMPAIGN_CONFIG / --launch" in refused.stderr and "rounds" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr

    store_campaign(sessions, tiny_campaign("mine", policy))
    other = tiny_campaign("mine", policy, prompts_per_round=7)
    clash = tmp_path / "clash.yaml"
    clash.write_text(yaml.safe_dump(other.model_dump(mode="json", by_alias=True)))
    refused = _serve(clash, store_env, db_url)
    assert refused.returncode == 2 and "'mine' is stored with other settings" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
