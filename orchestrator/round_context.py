"""What every stage of a round works with: the campaign's settings, store, workers and
live progress; the signals that end a round early; and the one way a stage commits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from orchestrator.config import CampaignConfig
from orchestrator.instructions import EvalItem as EvalInstruction
from orchestrator.runtime import CampaignWorkers
from store.campaigns import complete_stage, start_stage
from store.models import Round, Stage
from store.training import checkpoint_of


class RoundFailure(RuntimeError):
    """A round cannot go on; the reason is recorded on the round."""


class Stopped(Exception):
    """The campaign was paused or cancelled; the round stays where it is."""


@dataclass
class Snapshot:
    """What the live display shows; the driver updates it as work completes."""

    round: int = 0
    rounds: int = 0
    stage: str = "starting"
    done: int = 0
    total: int = 0
    loss: float | None = None
    flagged: float | None = None
    win_rate: float | None = None
    waiting: str | None = None  # while people judge: "waiting for judgments: 17 of 96 done"


@dataclass
class StageTimes:
    """Per stage: wall time, and the part spent waiting on the actual work (engines,
    judges, trainer, annotator); the rest is the loop's own overhead."""

    wall: dict[str, float] = field(default_factory=dict)
    work: dict[str, float] = field(default_factory=dict)
    round_wall: float = 0.0  # the whole round, between-stage bookkeeping included


@dataclass
class RoundContext:
    config: CampaignConfig
    sessions: sessionmaker[Session]
    campaign_id: int
    campaign_dir: Path
    policy: str  # the starting policy's directory
    workers: CampaignWorkers
    eval_items: list[EvalInstruction]
    check_stop: Callable[[], None]
    snapshot: Snapshot
    times: StageTimes

    def work(self, stage: Stage, call: Callable[[], object]):
        started = time.perf_counter()
        try:
            return call()
        finally:
            spent = time.perf_counter() - started
            self.times.work[stage] = self.times.work.get(stage, 0.0) + spent

    def checkpoint_location(self, session: Session, version: int) -> str:
        if version == 0:
            return self.policy
        checkpoint = checkpoint_of(session, self.campaign_id, version)
        if checkpoint is None:
            raise RoundFailure(f"checkpoint: version {version} was never published")
        return checkpoint.location

    def serve(self, version: int) -> None:
        with self.sessions() as session:
            location = self.checkpoint_location(session, version)
        self.workers.serve(version, location)

    def batches(self, stage: Stage, items: Sequence, total: int) -> Iterator[Sequence]:
        """`items` in commit-sized batches, checking for pause/cancel before each."""
        from cut.batching import chunked  # imports torch; the API server imports this module

        self.snapshot.stage, self.snapshot.total = stage.value, total
        self.snapshot.done = total - len(items)
        for batch in chunked(list(items), self.config.commit_every):
            self.check_stop()
            yield batch
            self.snapshot.done += len(batch)

    def arrivals(
        self, stage: Stage, arriving: Iterator, remaining: int, total: int
    ) -> Iterator[list]:
        """Items of a stream in commit-sized batches as they arrive, checking for
        pause/cancel before each; the wait for them counts as the stage's work."""
        self.snapshot.stage, self.snapshot.total = stage.value, total
        self.snapshot.done = total - remaining
        self.check_stop()
        batch: list = []
        while True:
            item = self.work(stage, lambda: next(arriving, None))
            if item is not None:
                batch.append(item)
            if batch and (item is None or len(batch) == self.config.commit_every):
                yield batch
                self.snapshot.done += len(batch)
                batch = []
                self.check_stop()
            if item is None:
                return


def commit_stage(context: RoundContext, round_id: int, stage: Stage, write=None) -> None:
    with context.sessions.begin() as session:
        round_ = session.get_one(Round, round_id)
        if write is not None:
            write(session, round_)
        complete_stage(session, round_, stage)


def record_start(context: RoundContext, round_id: int, stage: Stage) -> None:
    context.snapshot.stage, context.snapshot.done, context.snapshot.total = stage.value, 0, 0
    context.snapshot.waiting = None
    with context.sessions.begin() as session:
        start_stage(session, session.get_one(Round, round_id), stage)
