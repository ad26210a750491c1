"""The stages that collect judged answers: sample unused instructions, generate answers,
judge them. Each commits in batches and, on restart, does only what is not stored."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict

from sqlalchemy.orm import Session

from judge.base import JudgeRequest, JudgmentResult
from orchestrator.judging import by_people, judge_name
from orchestrator.round_context import RoundContext, RoundFailure, commit_stage
from store.models import Generation, Prompt, Round, Stage
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
def model_judgments(
    context: RoundContext, pending: Sequence[tuple[Generation, Prompt]], total: int
) -> Iterator[list[tuple[Generation, JudgmentResult]]]:
    """The judge worker's results for `pending`, a commit-sized batch at a time."""
    import ray

    worker = context.workers.judge  # started on first use: not when all is judged
    for batch in context.batches(Stage.JUDGE, pending, total):
        requests = [JudgeRequest(p.instruction, g.text) for g, p in batch]
        results = context.work(Stage.JUDGE, lambda r=requests: ray.get(worker().judge.remote(r)))
        failpoint("judge")  # the calls are made (and paid for), nothing is stored yet
        yield list(zip((g for g, _ in batch), results, strict=True))


def judgment_row(generation: Generation, result: JudgmentResult) -> dict:
    fields = {k: v for k, v in asdict(result).items() if k != "cached"}
    fields["spans"] = [list(span) for span in result.spans]  # as JSON reads them back
    return {"generation_id": generation.id, **fields}


def judge(context: RoundContext, round_id: int, index: int) -> None:
    if by_people(context.config.judge) is not None:
        from orchestrator.people import judge_by_people

        judge_by_people(context, round_id)
        return
    name = judge_name(context.config.judge)
    with context.sessions() as session:
        pending = unjudged_generations(session, round_id, name)
        total = count_generations(session, round_id)
    last_error = None
    for judged in model_judgments(context, pending, total):
        last_error = next((r.error for _, r in reversed(judged) if r.error), last_error)
        with context.sessions.begin() as session:
            add_judgments(session, [judgment_row(g, r) for g, r in judged])
    with context.sessions() as session:
        unjudged = len(unjudged_generations(session, round_id, name))
    if total == 0 or unjudged > context.config.max_failed_judgments * total:
        raise RoundFailure(
            f"judge: {unjudged} of {total} answers have no judgment "
            f"(max_failed_judgments {context.config.max_failed_judgments}); "
            f"last error: {last_error}"
        )
    commit_stage(context, round_id, Stage.JUDGE)
