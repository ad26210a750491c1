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

import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cut.batching import chunked
from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity
from judge.base import JudgeRequest, JudgmentStatus
from judge.pairwise import PairwiseItem
from orchestrator.config import CampaignConfig
from orchestrator.evaluation import TIE, win_rate
from orchestrator.instructions import EvalItem as EvalInstruction
from orchestrator.judging import judge_name
from orchestrator.runtime import CampaignWorkers
from store.campaigns import complete_stage, start_stage
from store.evals import (
    add_eval_items,
    eval_outputs,
    finish_eval_run,
    first_round_outputs,
    start_eval_run,
)
from store.models import CheckpointKind, EvalItem, Generation, Judgment, Prompt, Round, Stage
from store.models import TrainingRun as TrainingRunRow
from store.results import (
    add_generations,
    add_judgments,
    generated_prompt_ids,
    ok_judgments,
    round_prompts,
    sha256_text,
    take_unused_prompts,
    unjudged_generations,
)
from store.training import (
    add_checkpoint,
    add_flagged_tokens,
    add_training_steps,
    finish_training_run,
    latest_checkpoint,
    start_training_run,
)
from workers.engine import SamplingConfig
from workers.failpoints import failpoint


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
        checkpoint = latest_checkpoint(session, self.campaign_id, at_most=version)
        if checkpoint is None or checkpoint.version != version:
            raise RoundFailure(f"checkpoint: version {version} was never published")
        return checkpoint.location

    def serve(self, version: int) -> None:
        with self.sessions() as session:
            location = self.checkpoint_location(session, version)
        self.workers.serve(version, location)

    def batches(self, stage: Stage, items: Sequence, total: int) -> Iterator[Sequence]:
        """`items` in commit-sized batches, checking for pause/cancel before each."""
        self.snapshot.stage, self.snapshot.total = stage.value, total
        self.snapshot.done = total - len(items)
        for batch in chunked(list(items), self.config.commit_every):
            self.check_stop()
            yield batch
            self.snapshot.done += len(batch)


def _complete(context: RoundContext, round_id: int, stage: Stage, write=None) -> None:
    with context.sessions.begin() as session:
        round_ = session.get_one(Round, round_id)
        if write is not None:
            write(session, round_)
        complete_stage(session, round_, stage)


def _started(context: RoundContext, round_id: int, stage: Stage) -> None:
    context.snapshot.stage, context.snapshot.done, context.snapshot.total = stage.value, 0, 0
    with context.sessions.begin() as session:
        start_stage(session, session.get_one(Round, round_id), stage)


# --- sample -------------------------------------------------------------------------
def sample(context: RoundContext, round_id: int, index: int) -> None:
    def take(session: Session, round_: Round) -> None:
        prompts = take_unused_prompts(session, round_, context.config.prompts_per_round)
        if not prompts:
            raise RoundFailure("sample: every instruction of the source is used already")
        failpoint("sample")

    _complete(context, round_id, Stage.SAMPLE, take)


# --- generate -----------------------------------------------------------------------
def generate(context: RoundContext, round_id: int, index: int) -> None:
    sampling = context.config.generator.sampling
    with context.sessions() as session:
        prompts = round_prompts(session, round_id)
        done = generated_prompt_ids(session, round_id)
    todo = [p for p in prompts if p.id not in done]
    if todo:
        context.serve(index - 1)
    from workers.placement import generate_all

    for batch in context.batches(Stage.GENERATE, todo, len(prompts)):
        completions = context.work(
            Stage.GENERATE,
            lambda batch=batch: generate_all(
                context.workers.generators(), [p.instruction for p in batch], sampling
            ),
        )
        rows = [
            {
                "round_id": round_id,
                "prompt_id": prompt.id,
                "sample_index": c.sample_index,
                "policy_version": c.policy_version,
                "text": c.text,
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "finish_reason": c.finish_reason,
                "sampling": sampling.model_dump(),
            }
            for prompt, samples in zip(batch, completions, strict=True)
            for c in samples
        ]
        with context.sessions.begin() as session:
            add_generations(session, rows)
        failpoint("generate")
    _complete(context, round_id, Stage.GENERATE)


# --- judge --------------------------------------------------------------------------
def judge(context: RoundContext, round_id: int, index: int) -> None:
    import ray

    name = judge_name(context.config.judge)
    with context.sessions() as session:
        pending = unjudged_generations(session, round_id, name)
        total = session.scalar(
            select(func.count()).select_from(Generation).where(Generation.round_id == round_id)
        )
    worker = context.workers.judge() if pending else None
    last_error = None
    for batch in context.batches(Stage.JUDGE, pending, total):
        requests = [JudgeRequest(p.instruction, g.text) for g, p in batch]
        results = context.work(Stage.JUDGE, lambda r=requests: ray.get(worker.judge.remote(r)))  # type: ignore[union-attr]
        failpoint("judge")  # the calls are made (and paid for), nothing is stored yet
        rows = []
        for (generation, _), result in zip(batch, results, strict=True):
            fields = {k: v for k, v in asdict(result).items() if k != "cached"}
            rows.append({"generation_id": generation.id, **fields})
            last_error = result.error or last_error
        with context.sessions.begin() as session:
            add_judgments(session, rows)
    with context.sessions() as session:
        unjudged = len(unjudged_generations(session, round_id, name))
    if total == 0 or unjudged > context.config.max_failed_judgments * total:
        raise RoundFailure(
            f"judge: {unjudged} of {total} answers have no judgment "
            f"(max_failed_judgments {context.config.max_failed_judgments}); "
            f"last error: {last_error}"
        )
    _complete(context, round_id, Stage.JUDGE)


# --- build --------------------------------------------------------------------------
def round_cut_config(config: CampaignConfig, index: int) -> CUTConfig:
    """Each round shuffles its examples differently."""
    return config.cut.model_copy(update={"seed": config.cut.seed + index})


def build(context: RoundContext, round_id: int, index: int) -> None:
    """Fix the round's training set: which judged answers, in which order. Answers cut
    off at `max_new_tokens` are left out unless `train_on_truncated`: every CUT target
    ends with EOS, which would teach the policy to stop mid-sentence."""

    def record(session: Session, round_: Round) -> None:
        name = judge_name(context.config.judge)
        judged = ok_judgments(session, round_id, name)
        usable = [
            (g, j, p)
            for g, j, p in judged
            if context.config.train_on_truncated or g.finish_reason != "length"
        ]
        negative = sum(j.polarity == Polarity.NEGATIVE for _, j, _ in usable)
        if negative == 0:
            raise RoundFailure(
                f"build: none of the {len(usable)} usable judged answers is negative "
                f"({len(judged) - len(usable)} truncated left out); "
                "there is nothing for CUT to learn from"
            )
        cut_config = round_cut_config(context.config, index)
        start_training_run(
            session,
            round_id,
            {
                "cut": cut_config.model_dump(mode="json", by_alias=True),
                "judge": name,
                "generation_ids": [g.id for g, _, _ in usable],
                "negative": negative,
                "positive": len(usable) - negative,
                "truncated_left_out": len(judged) - len(usable),
            },
        )
        failpoint("build")

    _complete(context, round_id, Stage.BUILD, record)


def training_examples(session: Session, run: TrainingRunRow) -> list[JudgedExample]:
    ids: list[int] = run.hyperparameters["generation_ids"]
    query = (
        select(Generation, Judgment, Prompt)
        .join(Judgment, Judgment.generation_id == Generation.id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(
            Generation.id.in_(ids),
            Judgment.judge_name == run.hyperparameters["judge"],
            Judgment.status == JudgmentStatus.OK,
        )
    )
    by_id = {
        g.id: JudgedExample(p.instruction, g.text, j.text, j.polarity)
        for g, j, p in session.execute(query)
    }
    return [by_id[i] for i in ids]


def _training_run(session: Session, round_id: int) -> TrainingRunRow:
    return session.scalars(select(TrainingRunRow).where(TrainingRunRow.round_id == round_id)).one()


# --- train --------------------------------------------------------------------------
def checkpoint_dir(context: RoundContext, version: int) -> Path:
    return context.campaign_dir / "checkpoints" / f"v{version}"


def train(context: RoundContext, round_id: int, index: int) -> None:
    import ray

    with context.sessions() as session:
        run = _training_run(session, round_id)
        examples = training_examples(session, run)
        generation_ids = run.hyperparameters["generation_ids"]
        policy = context.checkpoint_location(session, index - 1)
    trainer = context.workers.trainer()
    future = trainer.train.remote(
        policy,
        examples,
        round_cut_config(context.config, index),
        str(checkpoint_dir(context, index)),
        str(context.campaign_dir / "rounds" / str(index) / "train-state"),
        {"campaign": context.config.name, "round": index},
    )
    started = time.perf_counter()
    while not ray.wait([future], timeout=1.0)[0]:
        if (latest := ray.get(trainer.progress.remote())) is not None:
            context.snapshot.done, context.snapshot.total = latest.step, latest.total_steps
            context.snapshot.loss, context.snapshot.flagged = latest.loss, latest.flagged_fraction
    outcome = ray.get(future)
    context.times.work[Stage.TRAIN] = time.perf_counter() - started
    failpoint("train")  # trained and saved, nothing stored yet

    def record(session: Session, round_: Round) -> None:
        run = _training_run(session, round_id)
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

    _complete(context, round_id, Stage.TRAIN, record)


# --- publish ------------------------------------------------------------------------
def directory_sha256(directory: Path) -> str:
    """One digest over the weight files (names and bytes), in name order."""
    digest = hashlib.sha256()
    for file in sorted(directory.glob("*.safetensors")):
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def publish(context: RoundContext, round_id: int, index: int) -> None:
    location = checkpoint_dir(context, index)
    if not any(location.glob("*.safetensors")):
        raise RoundFailure(f"publish: no checkpoint at {location}")
    sha256 = directory_sha256(location)

    def record(session: Session, round_: Round) -> None:
        parent = latest_checkpoint(session, context.campaign_id, at_most=index - 1)
        checkpoint_id = add_checkpoint(
            session, context.campaign_id, index, str(location), sha256, CheckpointKind.FULL,
            parent.id if parent is not None else None,
        )  # fmt: skip
        finish_training_run(session, _training_run(session, round_id), checkpoint_id)
        failpoint("publish")

    _complete(context, round_id, Stage.PUBLISH, record)


# --- swap ---------------------------------------------------------------------------
def swap(context: RoundContext, round_id: int, index: int) -> None:
    context.work(Stage.SWAP, lambda: context.serve(index))
    failpoint("swap")
    _complete(context, round_id, Stage.SWAP)


# --- evaluate -----------------------------------------------------------------------
def _eval_set_name(context: RoundContext) -> str:
    settings = context.config.evaluation
    return settings.eval_set if settings.path is None else f"file:{settings.path.name}"


def evaluate(context: RoundContext, round_id: int, index: int) -> None:
    """The policy answers greedily; the annotator compares each answer with the
    reference (the eval set's own, else the round-0 policy's answer: then round 0 is a
    tie with itself by definition and costs no annotator call)."""
    settings = context.config.evaluation
    greedy = SamplingConfig(temperature=0, max_new_tokens=settings.max_new_tokens)
    annotator = context.workers.annotator()
    eval_set = _eval_set_name(context)
    own_references = all(item.reference is not None for item in context.eval_items)
    with context.sessions.begin() as session:
        run = start_eval_run(
            session, round_id, eval_set, annotator.name, "eval set" if own_references else "round 0"
        )
        done = eval_outputs(session, run.id)
        references = (
            {} if own_references else first_round_outputs(session, context.campaign_id, eval_set)
        )
    todo = [i for i in context.eval_items if sha256_text(i.instruction) not in done]
    if todo:
        context.serve(index)
    from workers.placement import generate_all

    generators = context.workers.generators
    for batch in context.batches(Stage.EVALUATE, todo, len(context.eval_items)):
        instructions = [i.instruction for i in batch]
        completions = context.work(
            Stage.EVALUATE, lambda x=instructions: generate_all(generators(), x, greedy)
        )
        pairs = []
        for item, samples in zip(batch, completions, strict=True):
            output = samples[0].text
            reference = item.reference or references.get(sha256_text(item.instruction), output)
            pairs.append(PairwiseItem(item.instruction, reference, output))
        to_annotate = [p for p in pairs if p.output_1 != p.output_2]
        decided = iter(
            context.work(Stage.EVALUATE, lambda a=to_annotate: annotator.annotate(a))
            if to_annotate
            else []
        )
        rows = [
            {
                "instruction": p.instruction,
                "output": p.output_2,
                "reference_output": p.output_1,
                "preference": TIE if p.output_1 == p.output_2 else next(decided).preference,
            }
            for p in pairs
        ]
        with context.sessions.begin() as session:
            add_eval_items(session, run.id, rows)
        failpoint("evaluate")

    def summarise(session: Session, round_: Round) -> None:
        items = list(session.scalars(select(EvalItem).where(EvalItem.eval_run_id == run.id)))
        score = win_rate([i.preference for i in items], [i.output for i in items])
        context.snapshot.win_rate = score.win_rate
        finish_eval_run(
            session, session.get_one(type(run), run.id), win_rate=score.win_rate,
            standard_error=score.standard_error, n=score.n, ties=score.ties,
            failed=score.failed, avg_length=score.avg_length,
        )  # fmt: skip

    _complete(context, round_id, Stage.EVALUATE, summarise)


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
            _complete(context, round_id, stage)
            continue
        started = time.perf_counter()
        _started(context, round_id, stage)
        STAGES[stage](context, round_id, index)
        context.times.wall[stage] = time.perf_counter() - started
