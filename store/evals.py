"""Per-round evaluation: a run's summary and every per-instruction preference."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.errors import flush
from store.models import EvalItem, EvalRun, utcnow
from store.results import sha256_text
from store.upsert import insert_or_verify


def start_eval_run(
    session: Session, round_id: int, eval_set: str, annotator: str, reference: str
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
            round_id=round_id, eval_set=eval_set, annotator=annotator, reference=reference
        )
        session.add(run)
        flush(session, EvalRun)
    return run


def add_eval_items(session: Session, run_id: int, items: Sequence[dict[str, Any]]) -> list[int]:
    """items: {instruction, output, reference_output, preference}; one per instruction."""
    rows = [
        {"eval_run_id": run_id, "instruction_sha256": sha256_text(item["instruction"]), **item}
        for item in items
    ]
    return insert_or_verify(session, EvalItem, rows, key=("eval_run_id", "instruction_sha256"))


def finish_eval_run(session: Session, run: EvalRun, **summary: float | int | None) -> None:
    """summary: win_rate, standard_error, lc_win_rate, n, avg_length."""
    for field, value in summary.items():
        setattr(run, field, value)
    run.finished_at = utcnow()
    flush(session, EvalRun)
