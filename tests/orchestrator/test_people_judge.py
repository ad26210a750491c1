"""Rounds judged by people, on a real Ray and the tiny policy, the people played by
threads writing to the store as the API does: the deadline path (what was judged in time
is trained on, the rest expires and is counted), the review path (drafts accepted,
edited, rejected) and a `cutloop run` killed while people judge, on both stores (every
submitted judgment kept, no task published twice, the wait resumed)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path

import yaml
from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cut.examples import Polarity
from orchestrator.campaign_run import run_campaign, show_status
from store.judging import HUMAN, Submission, claim_task, reject_draft, submit_judgment
from store.models import (
    CampaignStatus,
    JudgingTask,
    Judgment,
    Round,
    Stage,
    TaskOutcome,
    TrainingRun,
)
from store.summaries import round_summaries
from tests.db_fixtures import sqlite_only
from tests.orchestrator.campaigns import save_tiny_policy, tiny_campaign
from tests.orchestrator.test_resume_after_kill import CUTLOOP
from workers.failpoints import FAILPOINT_ENV, MARKER_ENV

DEADLINE_S = 300
LEASE = timedelta(minutes=5)
# decides a task: returns the submission (None: the draft is rejected)
Decide = Callable[[JudgingTask, int], Submission | None]


def published(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(JudgingTask)) or 0


def judge_tasks(sessions: sessionmaker[Session], decide: Decide, how_many: int, name="ann") -> list:
    """Claim and decide up to `how_many` open tasks of the waiting round, as annotator
    `name`; returns the task ids decided."""
    decided: list[int] = []
    while len(decided) < how_many:
        with sessions.begin() as session:
            round_id = session.scalar(select(Round.id).where(Round.stage == Stage.JUDGE))
            task = claim_task(session, round_id, name, LEASE) if round_id else None
            if task is None:
                return decided
            submission = decide(task, len(decided))
            if submission is None:
                reject_draft(session, task, name)
            else:
                submit_judgment(session, task, name, submission)
            decided.append(task.id)
    return decided


def wait_for(check: Callable[[], bool], what: str, alive: Callable[[], bool] = lambda: True):
    deadline = time.monotonic() + DEADLINE_S
    while not check():
        assert alive(), f"the campaign stopped before {what}"
        assert time.monotonic() < deadline, f"{what} not within {DEADLINE_S} s"
        time.sleep(0.1)  # polling the store, under a deadline


def written(index: int) -> Submission:
    return Submission(f"Judgment {index}: it does not answer.", Polarity.NEGATIVE)


def in_background(config):
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=run_campaign(config)))
    thread.start()
    return thread, outcome


@sqlite_only
def test_at_the_deadline_the_round_trains_on_what_was_judged(store_env, sessions, tmp_path):
    policy = save_tiny_policy(tmp_path / "policy")
    judge = {"kind": "human", "deadline_s": 8, "poll_s": 0.2}
    thread, outcome = in_background(tiny_campaign("late", policy, rounds=1, judge=judge))
    wait_for(lambda: published(sessions) == 6, "the tasks published", thread.is_alive)
    shown = StringIO()
    show_status("late", Console(file=shown, width=200))  # as `cutloop status` shows it
    assert "round 1: waiting for judgments: 0 of 6 done" in shown.getvalue()
    decided = judge_tasks(sessions, lambda task, i: written(i), 2)
    thread.join(timeout=DEADLINE_S)
    assert outcome["result"].status == CampaignStatus.DONE, outcome["result"].error
    with sessions() as session:
        tasks = {t.id: t for t in session.scalars(select(JudgingTask))}
        assert sorted(t.outcome for t in tasks.values()) == sorted(
            [TaskOutcome.JUDGED] * 2 + [TaskOutcome.EXPIRED] * 4
        )
        run = session.scalars(select(TrainingRun)).one()
        assert sorted(run.hyperparameters["generation_ids"]) == sorted(
            tasks[i].generation_id for i in decided
        )
        summary = round_summaries(session, session.get_one(Round, run.round_id).campaign_id)[1]
        assert (summary.tasks, summary.tasks_done, summary.tasks_expired) == (6, 2, 4)


@sqlite_only
def test_reviewers_accept_edit_and_reject_a_rule_judges_drafts(store_env, sessions, tmp_path):
    policy = save_tiny_policy(tmp_path / "policy")
    judge = {"kind": "review", "draft": {"kind": "rules"}, "poll_s": 0.2}
    thread, outcome = in_background(tiny_campaign("reviewed", policy, rounds=1, judge=judge))

    def review(task: JudgingTask, index: int) -> Submission | None:
        draft = task.draft
        if index % 3 == 0:  # accepted: sent back unchanged
            return Submission(draft["text"], Polarity(draft["polarity"]),
                              tuple(tuple(s) for s in draft["spans"]))  # fmt: skip
        return written(index) if index % 3 == 1 else None

    wait_for(lambda: published(sessions) == 6, "the drafts published", thread.is_alive)
    assert len(judge_tasks(sessions, review, 6)) == 6
    thread.join(timeout=DEADLINE_S)
    assert outcome["result"].status == CampaignStatus.DONE, outcome["result"].error
    with sessions() as session:
        tasks = list(session.scalars(select(JudgingTask).order_by(JudgingTask.done_at)))
        assert all(t.draft is not None for t in tasks)
        judgments = {j.id: j for j in session.scalars(select(Judgment))}
        kept = [(t.outcome, judgments[t.judgment_id].judge_name) for t in tasks if t.judgment_id]
        assert (
            sorted(kept)
            == [(TaskOutcome.ACCEPTED, "rules")] * 2 + [(TaskOutcome.EDITED, HUMAN)] * 2
        )
        assert all(j.annotator == "ann" for j in judgments.values())
        run = session.scalars(select(TrainingRun)).one()
        assert sorted(run.hyperparameters["generation_ids"]) == sorted(
            t.generation_id for t in tasks if t.judgment_id
        )
        summary = round_summaries(session, session.get_one(Round, run.round_id).campaign_id)[1]
        assert summary.drafts_accepted == 2 / 6


def test_a_run_killed_while_people_judge_resumes_with_every_judgment_kept(
    db_url, sessions, tmp_path, cutloop_env
):
    policy = save_tiny_policy(tmp_path / "policy")
    env = {**cutloop_env, "CUTLOOP_DATABASE_URL": db_url}
    config = tiny_campaign("killed", policy, rounds=1, judge={"kind": "human", "poll_s": 0.2})
    path = tmp_path / "campaign.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))
    marker = tmp_path / "reached"
    first = _cutloop_run(path, {**env, FAILPOINT_ENV: "judge-wait", MARKER_ENV: str(marker)},
                         tmp_path / "first.log")  # fmt: skip
    try:
        wait_for(marker.exists, "the wait for judgments", lambda: first.poll() is None)
        before = judge_tasks(sessions, lambda task, i: written(i), 2)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        _kill_group(first)
    with sessions() as session:
        kept = {j.id: (j.generation_id, j.text) for j in session.scalars(select(Judgment))}
    assert len(before) == 2 and len(kept) == 2
    second = _cutloop_run(path, env, tmp_path / "second.log")
    try:
        after: list[int] = []

        def the_rest_judged() -> bool:
            after.extend(judge_tasks(sessions, lambda task, i: written(10 + i), 6, "other"))
            return len(before) + len(after) == 6

        wait_for(the_rest_judged, "the other four judged", lambda: second.poll() is None)
        assert second.wait(timeout=DEADLINE_S) == 0, (tmp_path / "second.log").read_text()
    finally:
        _kill_group(second)
    with sessions() as session:
        assert published(sessions) == 6
        judgments = {j.id: (j.generation_id, j.text) for j in session.scalars(select(Judgment))}
        assert len(judgments) == 6 and kept.items() <= judgments.items()
        run = session.scalars(select(TrainingRun)).one()
        assert len(run.hyperparameters["generation_ids"]) + run.hyperparameters["left_out"] == 6


def _cutloop_run(path: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as stderr:
        return subprocess.Popen(
            [CUTLOOP, "run", str(path)], env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True,
        )  # fmt: skip


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # Ray's agents outlive the driver
        os.killpg(process.pid, signal.SIGKILL)
