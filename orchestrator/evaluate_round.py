"""The evaluate stage: the policy answers the eval set greedily and the pairwise
annotator compares each answer with the reference. Answers to verifiable instructions
(the built-in set, IFEval's records) are also checked IFEval's way, and each later round is tested
against round 0 on them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict

from sqlalchemy.orm import Session

from judge.ifeval import IFEVAL_ACCURACIES, ItemResult, ifeval_scores
from judge.instructions import VerifiableInstruction
from judge.pairwise import PairwiseItem, PairwiseResult
from orchestrator.evaluation import TIE, mcnemar, truncated_percent, win_rate
from orchestrator.instructions import EvalItem as EvalInstruction
from orchestrator.instructions import reference_name
from orchestrator.length_control import Annotation, choose_glm, length_controlled
from orchestrator.round_context import RoundContext, commit_stage
from store.evals import (
    add_eval_items,
    eval_items_of,
    eval_outputs,
    finish_eval_run,
    first_round_items,
    first_round_outputs,
    start_eval_run,
)
from store.models import EvalItem, EvalRun, Round, Stage
from store.results import sha256_text
from workers.engine import SamplingConfig
from workers.failpoints import failpoint

logger = logging.getLogger(__name__)


# --- evaluate -----------------------------------------------------------------------
def _eval_set_name(context: RoundContext) -> str:
    settings = context.config.evaluation
    return settings.eval_set if settings.path is None else f"file:{settings.path.name}"


def _tally(item: EvalInstruction, output: str) -> dict[str, int | None]:
    """The IFEval tally of one answer; NULLs when its constraints are not known (an eval
    set of AlpacaEval's records)."""
    if item.constraints is None:
        return {"constraints": None, "strict_met": None, "loose_met": None}
    return asdict(ItemResult.of(VerifiableInstruction(item.instruction, item.constraints), output))


def _passed_strictly(items: list[EvalItem]) -> dict[str, bool]:
    """instruction sha256 -> every constraint met (strict), for the items with a tally."""
    return {i.instruction_sha256: i.strict_met == i.constraints
            for i in items if i.constraints is not None}  # fmt: skip


def _ifeval_summary(
    session: Session, round_: Round, run: EvalRun, items: list[EvalItem]
) -> dict[str, float | int | None]:
    """The IFEval accuracies, the cut-off share and, after round 0, the McNemar test
    against round 0's items on the same eval set. From the stored items, so a resumed
    stage counts the items of every attempt; NULL what cannot be known."""
    summary: dict[str, float | int | None] = {
        "truncated": truncated_percent([i.finish_reason for i in items])
    }
    scores = ifeval_scores(
        ItemResult(i.constraints, i.strict_met, i.loose_met)
        for i in items
        if i.constraints is not None
    )
    if scores is None:
        return summary
    summary |= {name: getattr(scores, name) for name in IFEVAL_ACCURACIES}
    if round_.index > 0:
        baseline = first_round_items(session, round_.campaign_id, run.eval_set)
        test = mcnemar(_passed_strictly(baseline), _passed_strictly(items))
        if test.pairs:
            summary |= {"mcnemar_b": test.b, "mcnemar_c": test.c, "mcnemar_p": test.p_value}
    return summary


def _length_controlled(
    context: RoundContext, items: list[EvalItem], *, self_reference: bool
) -> dict[str, float | str | None]:
    glm = choose_glm(context.config.evaluation.length_control, len(context.eval_items))
    annotations = [
        Annotation(
            i.position if i.position is not None else n, i.preference, i.output, i.reference_output
        )
        for n, i in enumerate(items)
    ]
    score = length_controlled(annotations, glm, self_reference=self_reference)
    return {"lc_win_rate": score.win_rate, "lc_standard_error": score.standard_error,
            "lc_glm": score.glm, "lc_missing": score.missing}  # fmt: skip


def verdicts(
    pairs: list[PairwiseItem], annotate: Callable[[list[PairwiseItem]], list[PairwiseResult]]
) -> list[PairwiseResult]:
    """Each pair's verdict, in the pairs' order: identical outputs tie without a call
    (round 0 against itself, answers a round left unchanged); the others go to
    `annotate` together."""
    differing = [p for p in pairs if p.output_1 != p.output_2]
    decided = iter(annotate(differing) if differing else [])
    return [PairwiseResult(TIE) if p.output_1 == p.output_2 else next(decided) for p in pairs]


def evaluate(context: RoundContext, round_id: int, index: int) -> None:
    """The policy answers greedily; the annotator compares each answer with the
    reference (the eval set's own, else the round-0 policy's answer: then round 0 is a
    tie with itself by definition and costs no annotator call)."""
    settings = context.config.evaluation
    greedy = SamplingConfig(temperature=0, max_new_tokens=settings.max_new_tokens)
    annotator = context.workers.annotator()
    eval_set = _eval_set_name(context)
    written_by = reference_name(context.eval_items)  # who wrote the references
    with context.sessions.begin() as session:
        run = start_eval_run(
            session, round_id, eval_set, annotator.name, written_by, annotator.version
        )
        done = eval_outputs(session, run.id)
        references = (
            first_round_outputs(session, context.campaign_id, eval_set)
            if written_by == "round 0"
            else {}
        )
    todo = [
        (position, item)
        for position, item in enumerate(context.eval_items)
        if sha256_text(item.instruction) not in done
    ]
    if todo:
        context.serve(index)
    from workers.placement import generate_all

    generators = context.workers.generators
    for batch in context.batches(Stage.EVALUATE, todo, len(context.eval_items)):
        instructions = [item.instruction for _, item in batch]
        completions = context.work(
            Stage.EVALUATE, lambda x=instructions: generate_all(generators(), x, greedy)
        )
        pairs = []
        for (_, item), samples in zip(batch, completions, strict=True):
            output = samples[0].text
            reference = item.reference or references.get(sha256_text(item.instruction), output)
            pairs.append(PairwiseItem(item.instruction, reference, output))
        results = context.work(Stage.EVALUATE, lambda p=pairs: verdicts(p, annotator.annotate))
        failpoint("evaluate")  # annotations paid for, none of this batch stored
        rows = [
            {
                "instruction": p.instruction,
                "position": position,
                "dataset": item.dataset,
                "output": p.output_2,
                "reference_output": p.output_1,
                "preference": result.preference,
                "annotation_error": result.error,
                "finish_reason": samples[0].finish_reason,
                **_tally(item, p.output_2),
            }
            for (position, item), samples, p, result in zip(
                batch, completions, pairs, results, strict=True
            )
        ]
        with context.sessions.begin() as session:
            add_eval_items(session, run.id, rows)

    own_reference = index == 0 and written_by == "round 0"  # ties with itself by definition

    def summarise(session: Session, round_: Round) -> None:
        items = eval_items_of(session, run.id)
        score = win_rate([i.preference for i in items], [i.output for i in items])
        context.snapshot.win_rate = score.win_rate
        stored = session.get_one(EvalRun, run.id)
        finish_eval_run(
            session, stored, win_rate=score.win_rate, standard_error=score.standard_error,
            discrete_win_rate=score.discrete_win_rate, decisive_win_rate=score.decisive_win_rate,
            n=score.n, ties=score.ties, failed=score.failed, avg_length=score.avg_length,
            **_length_controlled(context, items, self_reference=own_reference),
            **_ifeval_summary(session, round_, stored, items),
        )  # fmt: skip

    commit_stage(context, round_id, Stage.EVALUATE, summarise)
    if index > 0:
        describe_checkpoint(context, round_id, index)


def describe_checkpoint(context: RoundContext, round_id: int, index: int) -> None:
    """The round's checkpoint gets its model card and the campaign's config, on the
    trainer's node where it lives, once its evaluation is stored."""
    import ray

    from orchestrator.model_card import card_files

    with context.sessions() as session:
        round_ = session.get_one(Round, round_id)
        files = card_files(session, round_.campaign, round_)
        location = context.checkpoint_location(session, index)
    try:
        ray.get(context.workers.trainer().describe.remote(location, files))
    except Exception:  # the round is done and stored: a card is not worth failing it
        logger.warning("round %d: no model card written to %s", index, location, exc_info=True)
