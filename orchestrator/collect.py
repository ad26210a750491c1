"""The stages that collect judged answers: sample unused instructions, generate answers,
judge them. Each commits in batches and, on restart, does only what is not stored."""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy.orm import Session

from judge.base import JudgeRequest
from orchestrator.judging import judge_name
from orchestrator.round_context import RoundContext, RoundFailure, commit_stage
from store.models import Round, Stage
from store.results import (
    add_generations,
    add_judgments,
    count_generations,
    generated_prompt_ids,
    round_prompts,
    take_unused_prompts,
    unjudged_generations,
)
from workers.failpoints import failpoint


# --- sample -------------------------------------------------------------------------
def sample(context: RoundContext, round_id: int, index: int) -> None:
    def take(session: Session, round_: Round) -> None:
        prompts = take_unused_prompts(session, round_, context.config.prompts_per_round)
        if not prompts:
            raise RoundFailure("sample: every instruction of the source is used already")
        failpoint("sample")

    commit_stage(context, round_id, Stage.SAMPLE, take)


# --- generate -----------------------------------------------------------------------
def generate(context: RoundContext, round_id: int, index: int) -> None:
    """Every unanswered prompt goes to the engines at once; answers are committed as
    they arrive, `commit_every` at a time, so a restart skips what is stored."""
    from workers.placement import stream_all

    sampling = context.config.generator.sampling
    with context.sessions() as session:
        prompts = round_prompts(session, round_id)
        done = generated_prompt_ids(session, round_id)
    todo = [p for p in prompts if p.id not in done]
    if todo:
        context.serve(index - 1)
        arrivals = stream_all(context.workers.generators(), [p.instruction for p in todo], sampling)
        for batch in context.arrivals(Stage.GENERATE, arrivals, len(todo), len(prompts)):
            rows = [
                {
                    "round_id": round_id,
                    "prompt_id": todo[position].id,
                    "sample_index": c.sample_index,
                    "policy_version": c.policy_version,
                    "text": c.text,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "finish_reason": c.finish_reason,
                    "sampling": sampling.model_dump(),
                }
                for position, samples in batch
                for c in samples
            ]
            with context.sessions.begin() as session:
                add_generations(session, rows)
            failpoint("generate")
    commit_stage(context, round_id, Stage.GENERATE)


# --- judge --------------------------------------------------------------------------
def judge(context: RoundContext, round_id: int, index: int) -> None:
    import ray

    name = judge_name(context.config.judge)
    with context.sessions() as session:
        pending = unjudged_generations(session, round_id, name)
        total = count_generations(session, round_id)
    worker = context.workers.judge  # started on first use: not when all is judged
    last_error = None
    for batch in context.batches(Stage.JUDGE, pending, total):
        requests = [JudgeRequest(p.instruction, g.text) for g, p in batch]
        results = context.work(Stage.JUDGE, lambda r=requests: ray.get(worker().judge.remote(r)))
        failpoint("judge")  # the calls are made (and paid for), nothing is stored yet
        rows = []
        for (generation, _), result in zip(batch, results, strict=True):
            fields = {k: v for k, v in asdict(result).items() if k != "cached"}
            fields["spans"] = [list(span) for span in result.spans]  # as JSON reads them back
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
    commit_stage(context, round_id, Stage.JUDGE)
