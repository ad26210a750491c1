"""The trainer: runs a round's CUT training in its own process (a Ray actor, given a GPU
when the cluster has one) and writes the merged checkpoint the generators swap to.

A round restarted after a crash continues from its last saved training state, if the
campaign saves one (`cut.save_state_every`), else from the round's start; the per-step
metrics of the steps before the saved state are kept in `steps.jsonl` beside it, so the
round's record is whole either way. Run it with `max_concurrency=2`, so `progress` can
answer while `train` runs.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cut.checkpoint import METADATA_FILE, save_merged
from cut.config import CUTConfig
from cut.examples import JudgedExample
from cut.reports import FlaggedTokens, StepMetrics
from workers.failpoints import failpoint

STEPS_FILE = "steps.jsonl"


@dataclass(frozen=True)
class RoundTraining:
    checkpoint: str
    steps: list[StepMetrics]
    flagged: list[FlaggedTokens]
    n_align_p: int
    n_negative: int
    too_long: list[int] = field(default_factory=list)


def _saved_step(state_dir: Path) -> int:
    metadata = state_dir / METADATA_FILE
    return json.loads(metadata.read_text())["step"] if metadata.is_file() else 0


def _earlier_steps(state_dir: Path, saved_step: int) -> list[StepMetrics]:
    """Metrics of the steps the saved state already covers; later lines are redone."""
    log = state_dir / STEPS_FILE
    if not log.is_file():
        return []
    steps = [StepMetrics(**json.loads(line)) for line in log.read_text().splitlines() if line]
    return [s for s in steps if s.step <= saved_step]


class Trainer:
    def __init__(self) -> None:
        self._latest: StepMetrics | None = None

    def progress(self) -> StepMetrics | None:
        return self._latest

    def train(
        self,
        policy: str,
        examples: list[JudgedExample],
        config: CUTConfig,
        checkpoint_dir: str,
        state_dir: str,
        extra: dict | None = None,
    ) -> RoundTraining:
        """CUT on `examples` starting from the `policy` checkpoint; the merged result
        appears at `checkpoint_dir` only once it is complete (written aside, renamed)."""
        from cut.modeling import load_policy
        from cut.trainer import train_cut

        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        saved_step = _saved_step(state) if config.save_state_every else 0
        steps = _earlier_steps(state, saved_step)
        (state / STEPS_FILE).write_text("".join(json.dumps(asdict(s)) + "\n" for s in steps))

        def on_step(metrics: StepMetrics) -> None:
            self._latest = metrics
            with (state / STEPS_FILE).open("a") as log:
                log.write(json.dumps(asdict(metrics)) + "\n")
            failpoint(f"train-step-{metrics.step}")  # before this step's state is saved

        model, tokenizer = load_policy(policy, config)
        model, result = train_cut(
            model,
            tokenizer,
            examples,
            config,
            callback=on_step,
            state_dir=state if config.save_state_every else None,
            resume=saved_step > 0,
        )
        final = Path(checkpoint_dir)
        staging = final.with_name(final.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        step = len(steps) + len(result.steps)
        save_merged(model, tokenizer, staging, config, step=step, extra=extra)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        return RoundTraining(
            checkpoint=str(final),
            steps=steps + result.steps,
            flagged=list(result.flagged.values()),
            n_align_p=result.n_align_p,
            n_negative=result.n_negative,
            too_long=result.too_long,
        )
