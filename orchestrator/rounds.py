"""The round state machine: sample → generate → judge → build → train → publish → swap →
evaluate → done.

Every stage writes its results and marks itself complete in one transaction, so the
stage recorded on the round is always where a restarted orchestrator continues. Stages
that do many calls (generate, judge, evaluate) commit in batches of `commit_every` and
on restart skip what is stored: nothing is generated or judged twice, and a paid judge's
cache covers the calls made after the last commit. Round 0 is the starting policy: it
only runs the evaluation.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.collect import generate, judge, sample
from orchestrator.evaluate_round import evaluate
from orchestrator.learn import build, publish, swap, train
from orchestrator.round_context import RoundContext, commit_stage, record_start
from store.models import Round, Stage

STAGES: dict[Stage, Callable[[RoundContext, int, int], None]] = {
    Stage.SAMPLE: sample,
    Stage.GENERATE: generate,
    Stage.JUDGE: judge,
    Stage.BUILD: build,
    Stage.TRAIN: train,
    Stage.PUBLISH: publish,
    Stage.SWAP: swap,
    Stage.EVALUATE: evaluate,
}


def run_round(context: RoundContext, round_id: int, index: int) -> None:
    """Run the round's remaining stages, from the one recorded on it."""
    round_started = time.perf_counter()
    try:
        _run_stages(context, round_id, index)
    finally:
        context.times.round_wall = time.perf_counter() - round_started


def _run_stages(context: RoundContext, round_id: int, index: int) -> None:
    while True:
        with context.sessions() as session:
            stage = session.get_one(Round, round_id).stage
        if stage == Stage.DONE:
            return
        context.check_stop()
        if index == 0 and stage != Stage.EVALUATE:  # round 0: the starting policy, evaluated
            commit_stage(context, round_id, stage)
            continue
        started = time.perf_counter()
        record_start(context, round_id, stage)
        STAGES[stage](context, round_id, index)
        context.times.wall[stage] = time.perf_counter() - started
