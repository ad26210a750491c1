"""Experiment trackers: a tiny `cutloop run` reporting to TensorBoard and MLflow's local
SQLite store, killed and resumed — the event files and the MLflow run hold each step's
loss and each round's P-strict as the store has them, once; wandb offline writes its
run directory; a tracker not installed is refused in one line with its pip command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from orchestrator.config import TrackingSettings
from orchestrator.tracking import Reporter, missing_trackers
from store.models import (
    Campaign,
    EvalRun,
    Round,
    RoundStatus,
    Stage,
    TrainingRun,
    TrainingStep,
)
from tests.db_fixtures import sqlite_only
from tests.orchestrator.campaigns import save_tiny_policy, tiny_campaign
from tests.orchestrator.test_resume_after_kill import CUTLOOP, kill_at
from tests.store.factories import campaign_with_round


def test_a_tracker_not_installed_is_refused_in_one_line_with_its_pip_command(tmp_path):
    (line,) = missing_trackers(TrackingSettings(report_to=["tensorboard", "trackio"]))
    assert line == "tracking.report_to: trackio is not installed; pip install 'cutloop[trackio]'"
    config = tiny_campaign("untracked", save_tiny_policy(tmp_path / "policy"),
                           tracking={"report_to": ["trackio"]})  # fmt: skip
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    env = {**os.environ, "CUTLOOP_HOME": str(tmp_path / "home")}
    done = subprocess.run([CUTLOOP, "validate", str(path)], env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 2 and line in done.stdout + done.stderr


def _scalars(directory: Path, tag: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(directory))
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@sqlite_only  # three runs of a campaign; the reporter reads the store through its summaries
def test_a_killed_campaign_reports_every_step_and_round_to_its_trackers_once(
    db_url, sessions, tmp_path, cutloop_env
):
    policy = save_tiny_policy(tmp_path / "policy")
    env = {**cutloop_env, "CUTLOOP_DATABASE_URL": db_url}
    config = tiny_campaign("tracked", policy, tracking={"report_to": ["tensorboard", "mlflow"]})
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    assert kill_at("build", path, env, tmp_path / "killed.log") < 0  # round 0 reported
    # the next generate is round 2's: round 1's steps are reported by then
    assert kill_at("generate", path, env, tmp_path / "killed-again.log") < 0
    tracking = Path(cutloop_env["CUTLOOP_HOME"]) / "campaigns" / "tracked" / "tracking"
    assert json.loads((tracking / "state.json").read_text())["rounds"] == [0, 1]
    assert kill_at(None, path, env, tmp_path / "resumed.log") == 0
    with sessions() as s:
        campaign = s.scalars(select(Campaign)).one()
        losses = list(s.scalars(
            select(TrainingStep.loss)
            .join(TrainingRun, TrainingRun.id == TrainingStep.training_run_id)
            .join(Round, Round.id == TrainingRun.round_id)
            .order_by(Round.index, TrainingStep.step)
        ))  # fmt: skip
        strict = list(s.scalars(
            select(EvalRun.prompt_strict).join(Round, Round.id == EvalRun.round_id)
            .where(Round.campaign_id == campaign.id).order_by(Round.index)
        ))  # fmt: skip
    state = json.loads((tracking / "state.json").read_text())
    assert state["rounds"] == [0, 1, 2] and len(losses) > 2 and len(strict) == 3

    logged = _scalars(tracking / "tensorboard", "train/loss")
    assert [step for step, _ in logged] == list(range(1, len(losses) + 1))  # once each
    assert [v for _, v in logged] == pytest.approx(losses, rel=1e-6)
    rounds = _scalars(tracking / "tensorboard", "round/prompt_strict")
    assert [v for _, v in rounds] == pytest.approx(strict)

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tracking / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("cutloop").experiment_id])
    assert run.info.run_id == state["runs"]["mlflow"]  # one run, resumed after the kill
    history = sorted(client.get_metric_history(run.info.run_id, "train/loss"), key=lambda m: m.step)
    assert [m.step for m in history] == list(range(1, len(losses) + 1))
    assert [m.value for m in history] == pytest.approx(losses, rel=1e-6)
    assert [m.value for m in sorted(client.get_metric_history(run.info.run_id,
            "round/prompt_strict"), key=lambda m: m.step)] == pytest.approx(strict)  # fmt: skip
    assert run.data.params["name"] == "tracked" and run.data.params["cut.method"] == "cut"


def seeded_round_with_steps(sessions) -> int:
    """A campaign whose round 0 is done after two training steps; returns its id."""
    with sessions.begin() as session:
        campaign, round_, _ = campaign_with_round(session)
        round_.status, round_.stage = RoundStatus.DONE, Stage.DONE
        run = TrainingRun(round_id=round_.id, hyperparameters={})
        session.add(run)
        session.flush()
        session.add_all(
            TrainingStep(training_run_id=run.id, step=step, loss=1.0 / step, mle_loss=0.5,
                         unlikelihood_loss=0.1, n_flagged=3, flagged_fraction=0.2,
                         tokens_per_s=100.0, learning_rate=1e-5, grad_norm=1.0)
            for step in (1, 2)
        )  # fmt: skip
        return campaign.id


@sqlite_only  # the reporter reads the store as every summary does: no SQL of its own
def test_wandb_offline_writes_its_run_directory(sessions, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    campaign_id = seeded_round_with_steps(sessions)
    config = tiny_campaign("c1", tmp_path / "policy", tracking={"report_to": ["wandb"]})
    reporter = Reporter(config, tmp_path / "campaign")
    with sessions() as session:
        reporter.report(session, campaign_id)
    reporter.close()
    state = json.loads((tmp_path / "campaign" / "tracking" / "state.json").read_text())
    runs = list((tmp_path / "campaign" / "tracking" / "wandb").glob("offline-run-*"))
    assert state["rounds"] == [0] and len(runs) == 1
    assert runs[0].name.endswith(state["runs"]["wandb"])
    assert list(runs[0].glob("*.wandb"))  # the run's records, for `wandb sync`
