"""What a round produces before training: prompts, generations and judgments."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.orm import Session

from store.errors import refusals_named
from store.models import Generation, Judgment, JudgmentStatus, Prompt, Round, Split
from store.upsert import insert_or_verify

OK_JUDGMENT = text("status = 'ok'")  # the partial unique index's predicate
PEOPLE = "people"  # a round trains on what people wrote or approved (judge.by_people)


def sha256_text(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def add_prompts(
    session: Session,
    campaign_id: int,
    instructions: Iterable[str],
    source: str,
    split: Split,
    references: Sequence[str | None] | None = None,
) -> list[int]:
    """Register instructions (idempotent); returns their ids in input order."""
    instructions = list(instructions)
    references = references or [None] * len(instructions)
    rows = [
        {
            "campaign_id": campaign_id,
            "instruction": instruction,
            "instruction_sha256": sha256_text(instruction),
            "source": source,
            "split": split,
            "reference_output": reference,
        }
        for instruction, reference in zip(instructions, references, strict=True)
    ]
    return insert_or_verify(
        session, Prompt, rows, key=("campaign_id", "split", "instruction_sha256")
    )


def take_unused_prompts(session: Session, round_: Round, n: int) -> list[Prompt]:
    """The round's prompts: those it already took (resume), topped up with unused train
    prompts in insertion order."""
    taken = list(
        session.scalars(
            select(Prompt).where(Prompt.used_in_round_id == round_.id).order_by(Prompt.id)
        )
    )
    if len(taken) < n:
        fresh = list(
            session.scalars(
                select(Prompt)
                .where(
                    Prompt.campaign_id == round_.campaign_id,
                    Prompt.split == Split.TRAIN,
                    Prompt.used_in_round_id.is_(None),
                )
                .order_by(Prompt.id)
                .limit(n - len(taken))
            )
        )
        session.execute(
            update(Prompt)
            .where(Prompt.id.in_([p.id for p in fresh]))
            .values(used_in_round_id=round_.id)
            .execution_options(synchronize_session=False)
        )
        taken += fresh
    return taken


def round_prompts(session: Session, round_id: int) -> list[Prompt]:
    query = select(Prompt).where(Prompt.used_in_round_id == round_id).order_by(Prompt.id)
    return list(session.scalars(query))


def count_generations(session: Session, round_id: int) -> int:
    query = select(func.count()).select_from(Generation).where(Generation.round_id == round_id)
    return session.scalar(query) or 0


def generated_prompt_ids(session: Session, round_id: int) -> set[int]:
    return set(session.scalars(select(Generation.prompt_id).where(Generation.round_id == round_id)))


def add_generations(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """One generation per (round, prompt, sample index); returns ids in input order."""
    return insert_or_verify(
        session, Generation, rows, key=("round_id", "prompt_id", "sample_index")
    )


def add_judgments(session: Session, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Ok judgments are unique per (generation, judge) and verified on repeat; failed
    calls are appended as records (a later retry may still succeed)."""
    ok = [row for row in rows if row["status"] == JudgmentStatus.OK]
    failed = [row for row in rows if row["status"] != JudgmentStatus.OK]
    ok_ids = insert_or_verify(
        session, Judgment, ok, key=("generation_id", "judge_name"), where=OK_JUDGMENT
    )
    failed_ids: list[int] = []
    if failed:
        with refusals_named(Judgment.__table__), session.begin_nested():
            statement = insert(Judgment).returning(Judgment.id, sort_by_parameter_order=True)
            failed_ids = list(session.execute(statement, failed).scalars())
    ids = iter(ok_ids), iter(failed_ids)
    return [next(ids[0] if row["status"] == JudgmentStatus.OK else ids[1]) for row in rows]


def judged_by(judge_name: str):
    """The condition on Judgment of `judge_name`'s judgments; PEOPLE: those a person wrote
    or approved, whichever judge drafted them."""
    if judge_name == PEOPLE:
        return Judgment.annotator.is_not(None)
    return Judgment.judge_name == judge_name


def unjudged_generations(
    session: Session, round_id: int, judge_name: str
) -> list[tuple[Generation, Prompt]]:
    """The round's generations without an ok judgment from `judge_name` (never judged,
    or only failed calls so far), in generation order."""
    judged = select(Judgment.generation_id).where(
        judged_by(judge_name), Judgment.status == JudgmentStatus.OK
    )
    query = (
        select(Generation, Prompt)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(Generation.round_id == round_id, Generation.id.not_in(judged))
        .order_by(Generation.id)
    )
    return [(g, p) for g, p in session.execute(query)]


def ok_judgments(
    session: Session,
    round_ids: Sequence[int],
    judge_name: str,
    generation_ids: Sequence[int] | None = None,
) -> list[tuple[Generation, Judgment, Prompt]]:
    """The rounds' usable judgments (of these generations, in this order, if given);
    failed calls never appear here."""
    query = (
        select(Generation, Judgment, Prompt)
        .join(Judgment, Judgment.generation_id == Generation.id)
        .join(Prompt, Prompt.id == Generation.prompt_id)
        .where(
            Generation.round_id.in_(round_ids),
            judged_by(judge_name),
            Judgment.status == JudgmentStatus.OK,
        )
        .order_by(Generation.id)
    )
    if generation_ids is None:
        return [(g, j, p) for g, j, p in session.execute(query)]
    by_id = {
        g.id: (g, j, p)
        for g, j, p in session.execute(query.where(Generation.id.in_(generation_ids)))
    }
    return [by_id[i] for i in generation_ids]
