"""`cutloop validate`, and the same checks in `cutloop run` and POST /campaigns: every file
a campaign names, its model and its trainer's memory budget, checked before Ray starts,
one line per problem, nothing stored."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.state import ApiSettings
from tests.orchestrator.campaigns import save_tiny_policy, tiny_campaign

CUTLOOP = str(Path(sys.executable).with_name("cutloop"))


@pytest.fixture(scope="module")
def policy(tmp_path_factory) -> Path:
    return save_tiny_policy(tmp_path_factory.mktemp("policy"))


def campaign_file(directory: Path, policy: Path, **changes) -> Path:
    settings = tiny_campaign("checked", policy, **changes).model_dump(mode="json", by_alias=True)
    path = directory / "campaign.yaml"
    path.write_text(yaml.safe_dump(settings))
    return path


def cutloop(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {"CUTLOOP_HOME": str(home), "PATH": str(Path(sys.executable).parent)}
    return subprocess.run(
        [CUTLOOP, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


def test_a_good_campaign_prints_its_plan_without_starting_ray(tmp_path, policy):
    path = campaign_file(tmp_path, policy)
    probe = (
        "import sys; from typer.testing import CliRunner; from orchestrator.cli import app; "
        f"r = CliRunner().invoke(app, ['validate', {str(path)!r}]); "
        "print(r.output); print('ray loaded' if 'ray' in sys.modules else 'no ray'); "
        "sys.exit(r.exit_code)"
    )
    env = {"CUTLOOP_HOME": str(tmp_path / "home")}
    checked = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert checked.returncode == 0, checked.stderr
    assert "instructions: 600 (builtin), 6 a round" in checked.stdout
    assert "training memory: ~" in checked.stdout and "trainer.memory_gb 1" in checked.stdout
    assert checked.stdout.rstrip().endswith("no ray")


def test_every_problem_is_one_line_naming_the_file_and_the_setting(tmp_path, policy):
    path = campaign_file(
        tmp_path, policy,
        instructions={"kind": "file", "path": str(tmp_path / "none.jsonl")},
        evaluation={"eval_set": "file", "path": str(tmp_path / "none.json")},
        cut={"gradient_checkpointing": False, "max_tokens_per_micro_batch": 1_000_000},
    )  # fmt: skip
    checked = cutloop("validate", str(path), home=tmp_path / "home")
    lines = checked.stderr.strip().splitlines()
    assert checked.returncode == 2 and checked.stdout == ""
    assert lines == [
        f"error: {path}: instructions: {tmp_path / 'none.jsonl'}: no such file",
        f"error: {path}: evaluation: {tmp_path / 'none.json'}: no such file",
        lines[2],
    ]
    assert lines[2].startswith(f"error: {path}: trainer.memory_gb: training needs ~")
    moved = campaign_file(tmp_path, tmp_path / "gone")
    assert cutloop("validate", str(moved), home=tmp_path / "home").stderr.strip() == (
        f"error: {moved}: policy: no model directory at {tmp_path / 'gone'}"
    )


def test_cutloop_run_refuses_the_same_problems_before_anything_runs(tmp_path, policy):
    path = campaign_file(
        tmp_path, policy, instructions={"kind": "file", "path": str(tmp_path / "none.jsonl")}
    )
    refused = cutloop("run", str(path), home=tmp_path / "home")
    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        f"error: {path}: instructions: {tmp_path / 'none.jsonl'}: no such file"
    )
    assert not (tmp_path / "home" / "cutloop.db").exists(), "a refused campaign touched the store"


def test_post_campaigns_refuses_them_with_a_422_naming_the_setting(tmp_path, policy, ray_local):
    settings = ApiSettings(
        database_url=f"sqlite:///{tmp_path / 'cutloop.db'}", home=str(tmp_path), poll_s=0.2
    )
    missing = str(tmp_path / "none.jsonl")
    config = tiny_campaign("checked", policy, instructions={"kind": "file", "path": missing})
    with TestClient(create_app(settings)) as client:
        refused = client.post("/api/v1/campaigns", json=config.model_dump(mode="json"))
        assert refused.status_code == 422
        (problem,) = refused.json()["detail"]
        assert problem["loc"] == ["body", "instructions"] and missing in problem["msg"]
        assert client.get("/api/v1/campaigns").json() == []


def test_the_default_campaign_fits_its_own_trainer_memory(smollm2_dir):
    """Only a name: the bundled model, the default cut settings and trainer.memory_gb."""
    from orchestrator.config import CampaignConfig
    from orchestrator.validate import review_campaign

    review = review_campaign(CampaignConfig(name="defaults"), home=smollm2_dir.parents[1])
    assert review.problems == []
    assert any(line.startswith("training memory: ~") for line in review.plan), review.plan
