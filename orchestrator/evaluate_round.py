"""The evaluate stage: the policy answers the eval set greedily and the pairwise
annotator compares each answer with the reference."""

from __future__ import annotations

from sqlalchemy.orm import Session

from judge.pairwise import PairwiseItem
from orchestrator.evaluation import TIE, win_rate
from orchestrator.round_context import RoundContext, commit_stage
from store.evals import (
    add_eval_items,
    eval_items_of,
    eval_outputs,
    finish_eval_run,
    first_round_outputs,
    start_eval_run,
)
from store.models import EvalRun, Round, Stage
from store.results import sha256_text
from workers.engine import SamplingConfig
from workers.failpoints import failpoint


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
        items = eval_items_of(session, run.id)
        score = win_rate([i.preference for i in items], [i.output for i in items])
        context.snapshot.win_rate = score.win_rate
        finish_eval_run(
            session, session.get_one(EvalRun, run.id), win_rate=score.win_rate,
            standard_error=score.standard_error, n=score.n, ties=score.ties,
            failed=score.failed, avg_length=score.avg_length,
        )  # fmt: skip

    commit_stage(context, round_id, Stage.EVALUATE, summarise)
