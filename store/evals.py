"""Per-round evaluation: a run's summary and every per-instruction preference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import flush
from store.models import EvalItem, EvalRun, Round, utcnow
from store.results import sha256_text
from store.upsert import insert_or_verify


def start_eval_run(
    session: Session,
    round_id: int,
    eval_set: str,
    annotator: str,
    reference: str,
    annotator_version: str | None = None,
) -> EvalRun:
    run = session.scalar(
        select(EvalRun).where(
            EvalRun.round_id == round_id,
            EvalRun.eval_set == eval_set,
            EvalRun.annotator == annotator,
        )
    )
    if run is None:
        run = EvalRun(
            round_id=round_id,
            eval_set=eval_set,
            annotator=annotator,
            annotator_version=annotator_version,
            reference=reference,
        )
        session.add(run)
        flush(session, EvalRun)
    return run


def add_eval_items(session: Session, run_id: int, items: Sequence[dict[str, Any]]) -> list[int]:
    """items: {instruction, output, reference_output, preference}, and optionally
    position and dataset (in the eval set), annotation_error (why no preference),
    finish_reason and the IFEval tally {constraints, strict_met, loose_met} (left NULL
    when the instruction's constraints are not known); one per instruction."""
    rows = [
        {"eval_run_id": run_id, "instruction_sha256": sha256_text(item["instruction"]), **item}
        for item in items
    ]
    return insert_or_verify(session, EvalItem, rows, key=("eval_run_id", "instruction_sha256"))


def eval_items_of(session: Session, run_id: int) -> list[EvalItem]:
    """A run's items in eval-set order."""
    return list(
        session.scalars(
            select(EvalItem)
            .where(EvalItem.eval_run_id == run_id)
            .order_by(EvalItem.position, EvalItem.id)
        )
    )


def eval_outputs(session: Session, run_id: int) -> dict[str, str]:
    """instruction sha256 -> output, for the items a run already holds."""
    query = select(EvalItem.instruction_sha256, EvalItem.output).where(
        EvalItem.eval_run_id == run_id
    )
    return {sha: output for sha, output in session.execute(query)}


def _first_round_run(session: Session, campaign_id: int, eval_set: str) -> int | None:
    return session.scalar(
        select(EvalRun.id)
        .join(Round, Round.id == EvalRun.round_id)
        .where(Round.campaign_id == campaign_id, Round.index == 0, EvalRun.eval_set == eval_set)
        .order_by(EvalRun.id)
        .limit(1)
    )


def first_round_outputs(session: Session, campaign_id: int, eval_set: str) -> dict[str, str]:
    """The round-0 policy's answers on `eval_set`: the reference of later rounds when the
    eval set has no reference answers of its own."""
    run_id = _first_round_run(session, campaign_id, eval_set)
    return {} if run_id is None else eval_outputs(session, run_id)


def first_round_items(session: Session, campaign_id: int, eval_set: str) -> list[EvalItem]:
    """The round-0 policy's eval items on `eval_set`: the baseline later rounds are
    tested against."""
    run_id = _first_round_run(session, campaign_id, eval_set)
    return [] if run_id is None else eval_items_of(session, run_id)


def finish_eval_run(session: Session, run: EvalRun, **summary: float | int | str | None) -> None:
    """summary: any of EvalRun's summary columns: win_rate, standard_error,
    discrete_win_rate, lc_win_rate, lc_standard_error, lc_glm, lc_missing,
    decisive_win_rate, n, ties, failed, avg_length, truncated, the IFEval accuracies
    (prompt_strict, prompt_loose, instruction_strict, instruction_loose) and the McNemar
    test against round 0 (mcnemar_b, mcnemar_c, mcnemar_p)."""
    for field, value in summary.items():
        setattr(run, field, value)
    run.finished_at = utcnow()
    flush(session, EvalRun)


def round_eval_run(session: Session, campaign_id: int, index: int) -> EvalRun | None:
    """The (first) eval run of round `index`."""
    return session.scalar(
        select(EvalRun)
        .join(Round, Round.id == EvalRun.round_id)
        .where(Round.campaign_id == campaign_id, Round.index == index)
        .order_by(EvalRun.id)
        .limit(1)
    )
