"""What leaves cutloop as files: a round's eval answers as AlpacaEval's
`model_outputs.json`, so the `alpaca_eval` CLI (or any other evaluator) can score them
outside cutloop; the judgments people wrote, as judged data `cutloop train` reads."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store.browse import round_of
from store.campaigns import campaign_by_name
from store.evals import eval_items_of, round_eval_run
from store.results import PEOPLE, ok_judgments


def generator_name(campaign: str, index: int) -> str:
    return f"{campaign}-round{index}"


def model_outputs(session: Session, campaign_name: str, index: int) -> list[dict[str, Any]]:
    """[{instruction, output, generator, dataset}] in eval-set order; LookupError naming
    what is missing when the round has no finished evaluation."""
    campaign = campaign_by_name(session, campaign_name)
    if campaign is None:
        raise LookupError(f"no campaign named {campaign_name!r}")
    run = round_eval_run(session, campaign.id, index)
    if run is None:
        raise LookupError(f"campaign {campaign_name!r} has no evaluation of round {index}")
    if run.finished_at is None:
        raise LookupError(
            f"the evaluation of round {index} of {campaign_name!r} has not finished; "
            "run the campaign again to finish it"
        )
    generator = generator_name(campaign_name, index)
    return [
        {"instruction": i.instruction, "output": i.output, "generator": generator,
         "dataset": i.dataset}
        for i in eval_items_of(session, run.id)
    ]  # fmt: skip


def people_judgments(session: Session, campaign_name: str, index: int) -> list[dict[str, Any]]:
    """The round's judgments written or approved by people, as the reference code's
    records ({instruction, input, output, judgment}) that `cutloop train` reads, with
    polarity, spans, the annotator and the judge's name beside them."""
    campaign = campaign_by_name(session, campaign_name)
    if campaign is None:
        raise LookupError(f"no campaign named {campaign_name!r}")
    round_ = round_of(session, campaign.id, index)
    if round_ is None:
        raise LookupError(f"campaign {campaign_name!r} has no round {index}")
    return [
        {"instruction": p.instruction, "input": "", "output": g.text, "judgment": j.text,
         "polarity": j.polarity.value, "spans": j.spans or [], "annotator": j.annotator,
         "judge_name": j.judge_name, "created_at": j.created_at.isoformat()}
        for g, j, p in ok_judgments(session, [round_.id], PEOPLE)
    ]  # fmt: skip
