"""Judging tasks on both stores: one holder at a time (also under concurrent claims), a
lease that runs out returns the task, skips go to the back, a judgment is stored once
however often it is sent, a review's accept/edit/reject, and the round's close."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import select

from cut.examples import Polarity
from store.annotators import add_annotator, annotator_of, is_annotator_token, revoke_annotator
from store.errors import StoreError
from store.judging import (
    HUMAN,
    Submission,
    TaskConflict,
    claim_task,
    close_open_tasks,
    publish_tasks,
    reject_draft,
    skip_task,
    submit_judgment,
    task_counts,
)
from store.models import Annotator, JudgingTask, Judgment, TaskOutcome
from store.results import PEOPLE, ok_judgments
from tests.store.factories import seeded_generations

LEASE = timedelta(minutes=10)
NEGATIVE = Submission("The answer ignores the word limit.", Polarity.NEGATIVE, ((0, 6),))


def _published(sessions, n: int = 3, drafts=None):
    with sessions.begin() as session:
        _, round_, generations = seeded_generations(session, n_prompts=n)
        drafts = drafts or {}
        publish_tasks(session, round_.id, {g: drafts.get(i) for i, g in enumerate(generations)})
        return round_.id, generations


def _claim(sessions, round_id: int, annotator: str, lease=LEASE) -> int | None:
    with sessions.begin() as session:
        task = claim_task(session, round_id, annotator, lease)
        return task.id if task else None


def _submit(sessions, task_id: int, annotator: str, submission=NEGATIVE):
    with sessions.begin() as session:
        judgment, stored_now = submit_judgment(
            session, session.get_one(JudgingTask, task_id), annotator, submission
        )
        return judgment.id, stored_now


def test_two_annotators_never_hold_one_task_and_a_lapsed_lease_frees_it(sessions):
    round_id, _ = _published(sessions, n=2)
    alice, bob = _claim(sessions, round_id, "alice"), _claim(sessions, round_id, "bob")
    assert None not in (alice, bob) and alice != bob
    assert _claim(sessions, round_id, "alice") == alice  # her own task, not a second one
    assert _claim(sessions, round_id, "carol") is None  # both held
    with pytest.raises(TaskConflict, match="being judged by alice"):
        _submit(sessions, alice, "bob")
    with sessions.begin() as session:  # alice's lease runs out
        session.get_one(JudgingTask, alice).lease_until -= 2 * LEASE
    assert _claim(sessions, round_id, "carol") == alice
    with pytest.raises(TaskConflict, match="being judged by carol"):
        _submit(sessions, alice, "alice")


def test_concurrent_claims_give_every_task_to_one_annotator(sessions):
    round_id, _ = _published(sessions, n=12)
    held: dict[str, int | None] = {}
    start = threading.Barrier(12)

    def claim(name: str) -> None:
        start.wait(timeout=30)
        held[name] = _claim(sessions, round_id, name)

    threads = [threading.Thread(target=claim, args=(f"a{i}",)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = [t for t in held.values() if t is not None]
    assert len(held) == 12 and len(claimed) == len(set(claimed))
    with sessions() as session:
        holders = session.execute(select(JudgingTask.id, JudgingTask.claimed_by)).all()
    assert {task: name for task, name in holders if name} == {
        t: name for name, t in held.items() if t is not None
    }


def test_a_judgment_sent_twice_is_stored_once_and_another_is_refused(sessions):
    round_id, generations = _published(sessions, n=1)
    task = _claim(sessions, round_id, "alice")
    first, stored_now = _submit(sessions, task, "alice")
    again, stored_again = _submit(sessions, task, "alice")
    assert first == again and stored_now and not stored_again
    with pytest.raises(TaskConflict, match="judged by alice"):
        _submit(sessions, task, "alice", Submission("Fine.", Polarity.POSITIVE))
    with pytest.raises(TaskConflict, match="judged by alice"):
        _submit(sessions, task, "bob")
    with sessions() as session:
        stored = session.scalars(select(Judgment)).all()
        assert [(j.judge_name, j.annotator, j.text, j.spans) for j in stored] == [
            (HUMAN, "alice", NEGATIVE.text, [[0, 6]])
        ]
        assert [g.id for g, _, _ in ok_judgments(session, [round_id], PEOPLE)] == generations


def test_a_skipped_task_goes_behind_the_others(sessions):
    round_id, _ = _published(sessions, n=3)
    first = _claim(sessions, round_id, "alice")
    with sessions.begin() as session:
        skip_task(session, session.get_one(JudgingTask, first), "alice")
    with pytest.raises(TaskConflict, match="not held by bob"), sessions.begin() as session:
        skip_task(session, session.get_one(JudgingTask, first), "bob")
    others = {_claim(sessions, round_id, "bob"), _claim(sessions, round_id, "carol")}
    assert first not in others and _claim(sessions, round_id, "dan") == first


def test_reviews_accept_edit_and_reject_drafts(sessions):
    def draft(text: str, polarity: str, spans):
        return {"judge_name": "rules", "judge_model": None, "text": text, "polarity": polarity,
                "spans": spans}  # fmt: skip

    drafts = {
        0: draft("Too long.", "negative", [[3, 5], [0, 2]]),
        1: draft("Perfect.", "positive", []),
        2: draft("Misses a title.", "negative", []),
    }
    round_id, generations = _published(sessions, n=3, drafts=drafts)
    with sessions() as session:
        tasks = {t.generation_id: t.id for t in session.scalars(select(JudgingTask))}
    # the draft sent back unchanged (its spans in any order) is an acceptance
    _submit(sessions, tasks[generations[0]], "alice",
            Submission("Too long.", Polarity.NEGATIVE, ((0, 2), (3, 5))))  # fmt: skip
    _submit(sessions, tasks[generations[1]], "bob",
            Submission("Perfect, and brief.", Polarity.POSITIVE))  # fmt: skip
    with sessions.begin() as session:
        rejected = session.get_one(JudgingTask, tasks[generations[2]])
        assert reject_draft(session, rejected, "alice")
    with sessions.begin() as session:
        assert not reject_draft(session, session.get_one(JudgingTask, rejected.id), "alice")
    with sessions() as session:
        outcomes = {t.generation_id: (t.outcome, t.done_by) for t in session.scalars(
            select(JudgingTask))}  # fmt: skip
        assert outcomes == {generations[0]: (TaskOutcome.ACCEPTED, "alice"),
                            generations[1]: (TaskOutcome.EDITED, "bob"),
                            generations[2]: (TaskOutcome.REJECTED, "alice")}  # fmt: skip
        trained = ok_judgments(session, [round_id], PEOPLE)
        assert [(j.judge_name, j.annotator) for _, j, _ in trained] == [
            ("rules", "alice"), (HUMAN, "bob")
        ]  # fmt: skip
        counts = task_counts(session, [round_id])[round_id]
        assert (counts.done, counts.accepted, counts.drafts_accepted) == (
            3,
            1,
            pytest.approx(1 / 3),
        )


def test_closing_the_round_expires_open_tasks_and_refuses_late_judgments(sessions):
    round_id, _ = _published(sessions, n=3)
    judged = _claim(sessions, round_id, "alice")
    _submit(sessions, judged, "alice")
    late = _claim(sessions, round_id, "bob")
    with sessions.begin() as session:
        assert close_open_tasks(session, round_id) == 2
    with pytest.raises(TaskConflict, match="closed when its round moved on"):
        _submit(sessions, late, "bob")
    assert _claim(sessions, round_id, "carol") is None
    with sessions() as session:
        counts = task_counts(session, [round_id])[round_id]
        assert (counts.total, counts.done, counts.expired, counts.open) == (3, 1, 2, 0)


def test_annotator_tokens_are_stored_hashed_and_revocable(sessions):
    with sessions.begin() as session:
        token = add_annotator(session, "alice")
        with pytest.raises(StoreError, match="exists"):
            add_annotator(session, "alice")
    with sessions.begin() as session:
        assert annotator_of(session, token) == "alice"
        revoke_annotator(session, "alice")
    with sessions() as session:
        assert annotator_of(session, token) is None and is_annotator_token(session, token)
        stored = session.scalars(select(Annotator)).one()
        assert token not in (stored.token_sha256, stored.name)
