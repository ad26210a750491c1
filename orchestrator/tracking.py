"""Metrics where researchers already look: TensorBoard, MLflow, Weights & Biases and
Trackio (`tracking.report_to`, TRL's names). One run per campaign: the store is the
record, and at the end of every round the driver reports what the trackers have not yet
got — each training step at its global step across rounds, then the round's metrics —
noting in `tracking/state.json` (campaign directory) which rounds they hold and each
tracker's run id, so a restarted campaign resumes the same run and writes no step twice.
Every tracker works offline: TensorBoard event files and an MLflow SQLite store in the
campaign's directory, `WANDB_MODE=offline`, Trackio's local database."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.config import CampaignConfig, TrackingSettings
from store.models import Round, RoundStatus, TrainingRun, TrainingStep
from store.summaries import RoundSummary, round_summaries

logger = logging.getLogger(__name__)

MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb",
           "trackio": "trackio"}  # fmt: skip
STEP_METRICS = ("loss", "mle_loss", "unlikelihood_loss", "flagged_fraction", "learning_rate",
                "grad_norm", "tokens_per_s")  # fmt: skip
ROUND_METRICS = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose",
                 "win_rate", "lc_win_rate", "mcnemar_p", "negative", "positive",
                 "failed_calls", "final_loss", "flagged_fraction", "avg_length", "truncated",
                 "tasks_done", "tasks_expired", "drafts_accepted")  # fmt: skip


def missing_trackers(settings: TrackingSettings) -> list[str]:
    """One line per tracker named but not installed, with the command that installs it."""
    return [
        f"tracking.report_to: {name} is not installed; pip install 'cutloop[{name}]'"
        for name in settings.report_to
        if importlib.util.find_spec(MODULES[name]) is None
    ]


def flat_params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """The config as the trackers' parameters: dotted keys, values as text (only names
    of key variables are in a config, never a key)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat |= flat_params(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = json.dumps(value) if not isinstance(value, str) else value
    return flat


class Tracker(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def close(self) -> None: ...


class TensorBoardTracker:
    def __init__(self, directory: Path, params: dict[str, str], new: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(directory / "tensorboard"))
        if new:
            self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowTracker:
    def __init__(self, settings: TrackingSettings, directory: Path, name: str,
                 params: dict[str, str], run_id: str | None) -> None:  # fmt: skip
        from mlflow.tracking import MlflowClient

        uri = settings.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
        self.client = MlflowClient(uri or f"sqlite:///{(directory / 'mlflow.db').resolve()}")
        if run_id is None:
            found = self.client.get_experiment_by_name(settings.project)
            artifacts = (directory / "mlartifacts").resolve().as_uri()
            experiment = (
                found.experiment_id
                if found
                else self.client.create_experiment(settings.project, artifact_location=artifacts)
            )
            run_id = self.client.create_run(experiment, run_name=name).info.run_id
            from mlflow.entities import Param

            items = [Param(k, v[:6000]) for k, v in params.items()]
            for start in range(0, len(items), 100):  # MLflow takes 100 params a batch
                self.client.log_batch(run_id, params=items[start : start + 100])
        self.run_id = run_id

    def log(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, [Metric(k, v, now, step) for k, v in metrics.items()])

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class WandbTracker:
    """wandb and Trackio share an API (`init`, `log`, `finish`)."""

    def __init__(self, module: str, settings: TrackingSettings, directory: Path, name: str,
                 params: dict[str, str], run_id: str) -> None:  # fmt: skip
        library = importlib.import_module(module)
        extra = {"dir": str(directory), "id": run_id} if module == "wandb" else {}
        self.run = library.init(project=settings.project, name=name, config=params,
                                resume="allow", **extra)  # fmt: skip

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


def open_trackers(
    settings: TrackingSettings, directory: Path, name: str, params: dict[str, str],
    runs: dict[str, str], new: bool,
) -> dict[str, Tracker]:  # fmt: skip
    """The trackers of `settings`, resuming the runs in `runs` (tracker: run id) and
    adding the ids of the runs they start."""
    directory.mkdir(parents=True, exist_ok=True)
    trackers: dict[str, Tracker] = {}
    for tracker in settings.report_to:
        if tracker == "tensorboard":
            trackers[tracker] = TensorBoardTracker(directory, params, new)
        elif tracker == "mlflow":
            opened = MLflowTracker(settings, directory, name, params, runs.get(tracker))
            runs[tracker] = opened.run_id
            trackers[tracker] = opened
        else:
            runs.setdefault(tracker, f"{name}-{uuid.uuid4().hex[:8]}")
            trackers[tracker] = WandbTracker(tracker, settings, directory, name, params,
                                             runs[tracker])  # fmt: skip
    return trackers


def report_training(settings: TrackingSettings, directory: Path, name: str,
                    params: dict[str, Any], steps: Sequence[Any]) -> None:  # fmt: skip
    """An offline training run's steps (`cutloop train --report-to`), as a new run."""
    trackers = open_trackers(settings, directory, name, flat_params(params), {}, new=True)
    try:
        for step in steps:
            metrics = {f"train/{m}": float(getattr(step, m)) for m in STEP_METRICS}
            for tracker in trackers.values():
                tracker.log(metrics, step.step)
    finally:
        for tracker in trackers.values():
            tracker.close()


class Reporter:
    """A campaign's trackers, fed from the store at the end of every round."""

    def __init__(self, config: CampaignConfig, campaign_dir: Path) -> None:
        self.config = config
        self.directory = campaign_dir / "tracking"
        self.state_file = self.directory / "state.json"
        self._trackers: dict[str, Tracker] | None = None
        self._progress: dict[str, Any] = {}

    def _state(self) -> dict[str, Any]:
        if not self.state_file.is_file():
            return {"rounds": [], "runs": {}}
        return json.loads(self.state_file.read_text())

    def _save(self, state: dict[str, Any]) -> None:
        staged = self.state_file.with_suffix(".tmp")
        staged.write_text(json.dumps(state))
        staged.replace(self.state_file)  # whole or not at all

    def _open(self, state: dict[str, Any]) -> dict[str, Tracker]:
        params = flat_params(self.config.model_dump(mode="json", by_alias=True))
        return open_trackers(self.config.tracking, self.directory, self.config.name, params,
                             state["runs"], new=not state["rounds"])  # fmt: skip

    def report(self, session: Session, campaign_id: int) -> None:
        """Every done round the trackers do not hold yet, in order. A tracker that
        fails is logged and retried at the next round's end."""
        if not self.config.tracking.report_to:
            return
        try:
            if self._trackers is None:
                self._progress = self._state()
                self._trackers = self._open(self._progress)
                self._save(self._progress)  # the runs' ids, before anything is logged
            state = self._progress
            for summary, steps, offset in _unreported(session, campaign_id, state["rounds"]):
                for step in steps:
                    metrics = {f"train/{m}": float(getattr(step, m)) for m in STEP_METRICS}
                    self._log(metrics | {"train/round": summary.index}, offset + step.step)
                values = {f"round/{m}": float(v) for m in ROUND_METRICS
                          if (v := getattr(summary, m)) is not None}  # fmt: skip
                # at the global step the round ended on: every tracker's steps only grow
                self._log(values | {"round/index": summary.index}, offset + len(steps))
                state["rounds"].append(summary.index)
                self._save(state)
        except Exception:
            logger.exception(
                "the trackers %s could not be reported to", self.config.tracking.report_to
            )

    def _log(self, metrics: dict[str, float], step: int) -> None:
        for tracker in (self._trackers or {}).values():
            tracker.log(metrics, step)

    def close(self) -> None:
        for tracker in (self._trackers or {}).values():
            tracker.close()
        self._trackers = None


def _unreported(
    session: Session, campaign_id: int, reported: Sequence[int]
) -> Iterator[tuple[RoundSummary, list[TrainingStep], int]]:
    """(summary, training steps, global step before them) of each done round not in
    `reported`; the global step counts every earlier round's steps."""
    offset = 0
    for summary in round_summaries(session, campaign_id):
        steps = list(
            session.scalars(
                select(TrainingStep)
                .join(TrainingRun, TrainingRun.id == TrainingStep.training_run_id)
                .join(Round, Round.id == TrainingRun.round_id)
                .where(Round.campaign_id == campaign_id, Round.index == summary.index)
                .order_by(TrainingStep.step)
            )
        )
        if summary.status == RoundStatus.DONE and summary.index not in reported:
            yield summary, steps, offset
        offset += len(steps)
