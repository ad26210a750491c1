"""One set of lifecycle rules: `cutloop pause`/`cancel` and the API's routes give the same
answer in every state, and a config `cutloop run` takes as the stored campaign is the
same campaign for the API too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from api.state import ApiSettings
from orchestrator.cli import app as cli
from orchestrator.config import load_campaign
from orchestrator.lifecycle import store_campaign
from store.campaigns import campaign_by_name, set_campaign_status
from store.engine import make_engine, session_factory
from store.models import CampaignStatus

DEMO = Path(__file__).parents[2] / "campaigns" / "demo-cpu.yaml"


@pytest.fixture(scope="module")
def served(tmp_path_factory, ray_local) -> Iterator[tuple[TestClient, str]]:
    home = tmp_path_factory.mktemp("lifecycle")
    url = f"sqlite:///{home / 'cutloop.db'}"
    settings = ApiSettings(database_url=url, home=str(home), poll_s=0.2)
    with TestClient(create_app(settings)) as client:
        yield client, url


def stored_as(url: str, status: CampaignStatus) -> None:
    """The demo campaign stored with `status`."""
    engine = make_engine(url)
    with session_factory(engine).begin() as session:
        campaign, _ = store_campaign(session, load_campaign(DEMO))
        set_campaign_status(session, campaign.id, status)
    engine.dispose()


def status_of(url: str) -> CampaignStatus:
    engine = make_engine(url)
    with session_factory(engine)() as session:
        found = campaign_by_name(session, "demo-cpu")
        assert found is not None
        status = found.status
    engine.dispose()
    return status


@pytest.mark.parametrize("action", ["pause", "cancel"])
@pytest.mark.parametrize("status", list(CampaignStatus))
def test_the_cli_and_the_api_answer_alike_in_every_state(served, status, action):
    client, url = served
    stored_as(url, status)
    by_cli = CliRunner().invoke(cli, [action, "demo-cpu"], env={"CUTLOOP_DATABASE_URL": url})
    after_cli = status_of(url)
    stored_as(url, status)
    by_api = client.post(f"/api/v1/campaigns/demo-cpu/{action}")
    after_api = status_of(url)
    assert by_api.status_code in (202, 409), by_api.text
    assert (by_cli.exit_code == 0) == (by_api.status_code == 202), (by_cli.output, by_api.text)
    assert after_cli == after_api
    if by_api.status_code == 409:
        assert after_api == status, "a refusal changed the stored status"
        assert by_api.json()["detail"] in by_cli.output  # the same one line
    else:
        wanted = CampaignStatus.PAUSED if action == "pause" else CampaignStatus.CANCELLED
        assert after_api == wanted


def test_a_finished_campaign_is_neither_paused_nor_cancelled(served):
    _, url = served
    stored_as(url, CampaignStatus.DONE)
    for action in ("pause", "cancel"):
        refused = CliRunner().invoke(cli, [action, "demo-cpu"], env={"CUTLOOP_DATABASE_URL": url})
        assert refused.exit_code == 2 and "is done and cannot be" in refused.output
    assert status_of(url) == CampaignStatus.DONE


def test_the_api_takes_the_stored_campaign_with_more_rounds_as_the_same(served):
    client, url = served
    stored_as(url, CampaignStatus.PENDING)
    config = yaml.safe_load(DEMO.read_text())
    again = client.post("/api/v1/campaigns", json={**config, "rounds": 5})
    assert again.status_code == 200, again.text
    assert again.json()["rounds"] == 3  # stored rounds change only by a launch
    other = client.post("/api/v1/campaigns", json={**config, "prompts_per_round": 7})
    assert other.status_code == 409 and "stored with other settings" in other.json()["detail"]
