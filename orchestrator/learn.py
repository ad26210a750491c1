"""The stages that learn from the judged answers: build the training set, train with CUT
in the trainer actor, publish the checkpoint, hot-swap it into the generators."""

from __future__ import annotations

import logging
import time

from sqlalchemy import select
from sqlalchemy.orm import Session

from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity
from orchestrator.config import CampaignConfig
from orchestrator.judging import judge_name
from orchestrator.round_context import RoundContext, RoundFailure, commit_stage
from orchestrator.selection import select as select_answers
from orchestrator.selection import truncated_left_out
from orchestrator.training_fit import check_training_fits
from store.models import CheckpointKind, Round, Stage
from store.models import TrainingRun as TrainingRunRow
from store.results import ok_judgments
from store.summaries import round_summaries
from store.training import (
    add_checkpoint,
    add_flagged_tokens,
    add_training_steps,
    checkpoint_of,
    checkpoints_of,
    finish_training_run,
    start_training_run,
    training_run_of,
)
from workers.failpoints import failpoint

logger = logging.getLogger(__name__)


# --- build --------------------------------------------------------------------------
def as_examples(judged) -> list[JudgedExample]:
    """(generation, judgment, prompt) rows as the trainer's examples, with their spans."""
    return [
        JudgedExample(p.instruction, g.text, j.text, j.polarity,
                      tuple(tuple(span) for span in j.spans or ()))
        for g, j, p in judged
    ]  # fmt: skip


def round_cut_config(config: CampaignConfig, index: int) -> CUTConfig:
    """The campaign's method; each round shuffles its examples differently."""
    return config.cut.model_copy(update={"seed": config.cut.seed + index, "method": config.method})


def training_rounds(
    session: Session, context: RoundContext, round_id: int, index: int
) -> list[int]:
    """The rounds whose answers round `index` trains on: its own, or with
    fresh_each_round every round so far."""
    if not context.config.fresh_each_round:
        return [round_id]
    query = (
        select(Round.id)
        .where(Round.campaign_id == context.campaign_id, Round.index.between(1, index))
        .order_by(Round.index)
    )
    return list(session.scalars(query))


def build(context: RoundContext, round_id: int, index: int) -> None:
    """Fix the round's training set: which judged answers (selection), in which order.
    Answers cut off at `max_new_tokens` are left out unless
    `selection.train_on_truncated`: every target ends with EOS, which would teach the
    policy to stop mid-sentence. Fails, before any training, when the method has nothing
    to learn from, an answer cannot fit one forward pass or the settings need more
    memory than the trainer has (training_fit)."""

    def record(session: Session, round_: Round) -> None:
        name = judge_name(context.config.judge)
        rounds = training_rounds(session, context, round_id, index)
        judged = ok_judgments(session, rounds, name)
        usable = select_answers(judged, context.config.selection)
        negative = sum(j.polarity == Polarity.NEGATIVE for _, j, _ in usable)
        left_out = len(judged) - len(usable)
        truncated = truncated_left_out(judged, context.config.selection)
        cut_config = round_cut_config(context.config, index)
        check_training_fits(
            context.policy,
            as_examples(usable),
            [g.id for g, _, _ in usable],
            cut_config,
            None if context.workers.plan.gpus else context.config.trainer.memory_gb,
            f"{left_out} left out by the selection settings"
            + (
                f", {truncated} of them cut off at max_new_tokens "
                "(selection.train_on_truncated is off)"
                if truncated
                else ""
            ),
        )
        start_training_run(
            session,
            round_id,
            {
                "cut": cut_config.model_dump(mode="json", by_alias=True),
                "judge": name,
                "round_ids": rounds,
                "generation_ids": [g.id for g, _, _ in usable],
                "negative": negative,
                "positive": len(usable) - negative,
                "left_out": left_out,
                "truncated_left_out": truncated,
            },
        )
        failpoint("build")

    commit_stage(context, round_id, Stage.BUILD, record)


def training_examples(session: Session, run: TrainingRunRow) -> list[JudgedExample]:
    """The examples fixed by build, in build's order."""
    hyper = run.hyperparameters
    rounds = hyper.get("round_ids", [run.round_id])
    judged = ok_judgments(session, rounds, hyper["judge"], hyper["generation_ids"])
    return as_examples(judged)


# --- train --------------------------------------------------------------------------
def train(context: RoundContext, round_id: int, index: int) -> None:
    import ray

    with context.sessions() as session:
        run = training_run_of(session, round_id)
        examples = training_examples(session, run)
        generation_ids = run.hyperparameters["generation_ids"]
        start = 0 if context.config.fresh_each_round else index - 1
        policy = context.checkpoint_location(session, start)
    workers = context.workers
    trainer = workers.trainer()
    started = time.perf_counter()
    with workers.training():
        future = trainer.train.remote(
            policy,
            examples,
            round_cut_config(context.config, index),
            (context.config.name, workers.identity),
            index,
            start,
            {"campaign": context.config.name, "round": index},
        )
        while not ray.wait([future], timeout=1.0)[0]:
            if (latest := ray.get(trainer.progress.remote())) is not None:
                context.snapshot.done, context.snapshot.total = latest.step, latest.total_steps
                context.snapshot.loss = latest.loss
                context.snapshot.flagged = latest.flagged_fraction
        outcome = ray.get(future)
    context.times.work[Stage.TRAIN] = time.perf_counter() - started
    failpoint("train")  # trained and saved, nothing stored yet

    def record(session: Session, round_: Round) -> None:
        run = training_run_of(session, round_id)
        metric_fields = ("loss", "mle_loss", "unlikelihood_loss", "n_flagged", "flagged_fraction",
                         "tokens_per_s", "learning_rate", "grad_norm")  # fmt: skip
        add_training_steps(
            session,
            run.id,
            [{"step": s.step, **{f: getattr(s, f) for f in metric_fields}} for s in outcome.steps],
        )
        add_flagged_tokens(
            session,
            run.id,
            [
                {
                    "generation_id": generation_ids[f.example_index],
                    "positions": f.positions,
                    "token_ids": f.token_ids,
                    "ratios": f.ratios,
                }
                for f in outcome.flagged
            ],
        )

    commit_stage(context, round_id, Stage.TRAIN, record)


# --- publish ------------------------------------------------------------------------
def publish(context: RoundContext, round_id: int, index: int) -> None:
    """Record the checkpoint the trainer wrote on its node (it digests it there)."""
    import ray

    location = checkpoint_location(context, index)
    try:
        sha256 = ray.get(context.workers.trainer().digest.remote(location))
    except FileNotFoundError as error:
        raise RoundFailure(f"publish: {error}") from None

    def record(session: Session, round_: Round) -> None:
        parent = checkpoint_of(session, context.campaign_id, index - 1)  # None in round 1
        checkpoint_id = add_checkpoint(
            session, context.campaign_id, index, location, sha256, CheckpointKind.FULL,
            parent.id if parent is not None else None,
        )  # fmt: skip
        finish_training_run(session, training_run_of(session, round_id), checkpoint_id)
        failpoint("publish")

    commit_stage(context, round_id, Stage.PUBLISH, record)
    prune_checkpoints(context)


def checkpoint_location(context: RoundContext, index: int) -> str:
    """Where the trainer writes round `index`'s checkpoint, on its node (asked again
    after a restart between train and publish)."""
    import ray

    return ray.get(context.workers.trainer().checkpoint_path.remote(context.config.name, index))


def prune_checkpoints(context: RoundContext) -> None:
    """checkpoints.keep_last: delete, on the trainer's node, the checkpoints older than
    the last K, except the best evaluated one (keep_best). The starting policy and the
    store's rows stay (a row records what was trained)."""
    import ray

    retention = context.config.checkpoints
    if retention.keep_last is None:
        return
    with context.sessions() as session:
        rounds = round_summaries(session, context.campaign_id)
        stored = {c.version: c.location for c in checkpoints_of(session, context.campaign_id)}
    keep = set(sorted(stored)[-retention.keep_last :])
    evaluated = [r for r in rounds if r.index in stored and r.win_rate is not None]
    if retention.keep_best and evaluated:
        keep.add(max(evaluated, key=lambda r: r.win_rate).index)
    old = [location for version, location in stored.items() if version not in keep]
    if old:
        removed = ray.get(context.workers.trainer().prune.remote(old))
        logger.info("pruned checkpoints %s", removed)


# --- swap ---------------------------------------------------------------------------
def swap(context: RoundContext, round_id: int, index: int) -> None:
    context.work(Stage.SWAP, lambda: context.serve(index))
    failpoint("swap")
    commit_stage(context, round_id, Stage.SWAP)
