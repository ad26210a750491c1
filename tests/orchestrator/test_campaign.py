"""The campaign loop end to end on a real Ray, real stores (SQLite and PostgreSQL), the
transformers engine with a tiny random policy, rule judges and a real OpenAI-compatible
judge server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from huggingface_hub import ModelCard
from sqlalchemy import select
from transformers import AutoModelForCausalLM

from orchestrator.campaign_run import request_status, run_campaign
from orchestrator.lifecycle import StateConflict, store_campaign
from store.models import (
    Campaign,
    CampaignStatus,
    Checkpoint,
    EvalItem,
    EvalRun,
    Generation,
    Judgment,
    JudgmentStatus,
    Prompt,
    Round,
    RoundStage,
    RoundStatus,
    Stage,
    TrainingRun,
    TrainingStep,
)
from tests.db_fixtures import sqlite_only
from tests.judge.fake_openai import FakeOpenAI
from tests.orchestrator.campaigns import (
    count,
    judge_calls,
    openai_judge,
    rounds_of,
    save_tiny_policy,
    tiny_campaign,
)

CUTLOOP = str(Path(sys.executable).with_name("cutloop"))


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("policy"))


def test_a_campaign_runs_every_stage_of_every_round_and_records_it(store_env, sessions, policy):
    config = tiny_campaign("full", policy)
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.DONE and outcome.error is None
    with sessions() as s:
        rounds = rounds_of(s, "full")
        assert [(r.index, r.status, r.stage) for r in rounds] == [
            (i, RoundStatus.DONE, Stage.DONE) for i in range(3)
        ]
        used = {}
        for r in rounds[1:]:
            prompts = list(s.scalars(select(Prompt).where(Prompt.used_in_round_id == r.id)))
            generations = list(s.scalars(select(Generation).where(Generation.round_id == r.id)))
            assert len(prompts) == 6 and len(generations) == 6
            assert {g.prompt_id for g in generations} == {p.id for p in prompts}
            assert {g.policy_version for g in generations} == {r.index - 1}  # the last swap
            used[r.index] = {p.id for p in prompts}
            ok = count(s, Judgment, Judgment.generation_id.in_([g.id for g in generations]),
                       Judgment.status == JudgmentStatus.OK)  # fmt: skip
            assert ok == 6
            steps = list(
                s.scalars(
                    select(TrainingStep.step)
                    .join(TrainingRun, TrainingRun.id == TrainingStep.training_run_id)
                    .where(TrainingRun.round_id == r.id)
                    .order_by(TrainingStep.step)
                )
            )
            assert steps == [1, 2, 3]  # 5-6 examples after down-sampling, 2 per step
            stages = s.scalars(
                select(RoundStage).where(RoundStage.round_id == r.id).order_by(RoundStage.id)
            )
            assert [(x.stage, x.finished_at is not None) for x in stages] == [
                (stage, True) for stage in list(Stage)[:-1]
            ]
        assert not used[1] & used[2]  # a round never reuses an instruction
        checkpoints = list(s.scalars(select(Checkpoint).order_by(Checkpoint.version)))
        assert [c.version for c in checkpoints] == [1, 2]
        assert checkpoints[1].parent_id == checkpoints[0].id
        for checkpoint in checkpoints:  # each describes itself: its card and config
            card = ModelCard.load(Path(checkpoint.location) / "README.md")
            assert card.data.base_model == str(policy) and "lora" not in card.data.tags
            assert f"# full, round {checkpoint.version}" in card.text
            assert (Path(checkpoint.location) / "cutloop-campaign.yaml").is_file()
        runs = list(s.scalars(select(EvalRun).order_by(EvalRun.round_id)))
        assert [r.n for r in runs] == [5, 5, 5] and all(r.failed == 0 for r in runs)
        # round 0 is its own reference: every item a tie, no annotator needed
        assert runs[0].win_rate == 50.0 and runs[0].ties == 5 and runs[0].reference == "round 0"
        assert (runs[0].lc_win_rate, runs[0].lc_missing) == (50.0, None)  # by construction
        # later rounds: length-only GLM on the built-in set; 5 items are enough to fit it
        assert all(r.lc_glm == "length_controlled_minimal" for r in runs)
        assert all((r.lc_win_rate is None) != (r.lc_missing is None) for r in runs)
        assert count(s, EvalItem) == 15
        assert_ifeval_metrics(s, runs)
    status = subprocess.run(
        [CUTLOOP, "status", "full"], capture_output=True, text=True, env=dict(os.environ)
    )
    assert status.returncode == 0, status.stderr
    for column in ("P-strict", "P-loose", "I-strict", "I-loose", "cut", "p(R0)", "decisive",
                   "win rate", "LC", "length", "rules against round 0"):  # fmt: skip
        assert column in status.stdout, column
    trained = AutoModelForCausalLM.from_pretrained(checkpoints[1].location)
    start = AutoModelForCausalLM.from_pretrained(policy)
    assert any(
        not a.equal(b) for a, b in zip(trained.parameters(), start.parameters(), strict=True)
    )


def assert_ifeval_metrics(session, runs: list[EvalRun]) -> None:
    """Every round's run has IFEval's accuracies and the cut-off share (the built-in eval
    set's constraints are known); later rounds are tested against round 0's items."""
    passed = []
    for run in runs:
        items = list(session.scalars(select(EvalItem).where(EvalItem.eval_run_id == run.id)))
        assert all(i.finish_reason in ("stop", "length") for i in items)
        assert all(0 <= i.strict_met <= i.loose_met <= i.constraints for i in items)
        passed.append({i.instruction_sha256: i.strict_met == i.constraints for i in items})
        metrics = (run.prompt_strict, run.prompt_loose, run.instruction_strict,
                   run.instruction_loose, run.truncated)  # fmt: skip
        assert all(m is not None and 0 <= m <= 100 for m in metrics), metrics
        assert run.prompt_strict <= run.prompt_loose
        assert run.prompt_strict == 100 * sum(passed[-1].values()) / len(items)
    assert (runs[0].mcnemar_b, runs[0].mcnemar_c, runs[0].mcnemar_p) == (None, None, None)
    for run, now in zip(runs[1:], passed[1:], strict=True):
        assert 0 <= run.mcnemar_p <= 1
        assert run.mcnemar_b == sum(now[k] and not passed[0][k] for k in now)
        assert run.mcnemar_c == sum(passed[0][k] and not now[k] for k in now)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_round_whose_judge_fails_is_recorded_failed_and_resumes_without_new_answers(
    store_env, sessions, policy
):
    port = free_port()  # nothing listens there yet: every judge call fails
    judge = openai_judge(f"http://127.0.0.1:{port}/v1")
    config = tiny_campaign("judge-down", policy, rounds=1, judge=judge)
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.FAILED
    assert "judge: 6 of 6 answers have no judgment" in outcome.error
    with sessions() as s:
        first = rounds_of(s, "judge-down")[1]
        assert first.status == RoundStatus.FAILED and first.stage == Stage.JUDGE
        assert "no judgment" in first.error and "onnection" in first.error
        assert count(s, Judgment, Judgment.status == JudgmentStatus.FAILED) == 6
        assert count(s, Judgment, Judgment.status == JudgmentStatus.OK) == 0
        answers = set(s.scalars(select(Generation.id)))
        status = s.scalars(select(Campaign.status)).one()
        assert status == CampaignStatus.FAILED
    with FakeOpenAI(port=port) as server:  # the judge is back
        outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.DONE
    assert judge_calls(server) == 6
    with sessions() as s:
        assert set(s.scalars(select(Generation.id))) == answers  # nothing generated again
        assert count(s, Judgment, Judgment.status == JudgmentStatus.OK) == 6
        assert count(s, Judgment, Judgment.status == JudgmentStatus.FAILED) == 6  # kept
        assert rounds_of(s, "judge-down")[1].error is None


def test_a_judge_budget_spent_before_a_restart_stays_spent(store_env, sessions, policy):
    with FakeOpenAI() as server:
        judge = openai_judge(server.base_url, max_calls=4, concurrency=1)
        config = tiny_campaign("budget", policy, rounds=1, commit_every=3, judge=judge)
        outcome = run_campaign(config)  # batches of 3: the second gets one call, not three
        assert outcome.status == CampaignStatus.FAILED
        assert "judge: 2 of 6 answers have no judgment" in outcome.error
        assert "budget exhausted: max_calls=4 reached" in outcome.error
        assert judge_calls(server) == 4
        again = run_campaign(config)  # a new judge worker: the budget is the campaign's
        assert again.status == CampaignStatus.FAILED
        assert "budget exhausted: max_calls=4 reached" in again.error
        assert judge_calls(server) == 4
    with sessions() as s:
        assert count(s, Judgment, Judgment.status == JudgmentStatus.OK) == 4


def test_pause_stops_between_batches_and_a_rerun_goes_on_without_paying_twice(
    store_env, sessions, policy
):
    # the judge answers the first batch (2 answers) and holds the second until released
    with FakeOpenAI(hold_after=2) as server:
        judge = openai_judge(server.base_url, concurrency=1, timeout_s=300)
        config = tiny_campaign("paused", policy, rounds=1, commit_every=2, judge=judge)
        outcome = {}
        runner = threading.Thread(target=lambda: outcome.update(first=run_campaign(config)))
        runner.start()
        deadline = time.monotonic() + 300
        # the second batch's call arrives once the first batch is committed: pause then
        while len(server.requests) < 3:
            assert runner.is_alive(), f"the campaign ended first: {outcome}"
            assert time.monotonic() < deadline, "the second batch was not sent within 300 s"
            runner.join(timeout=0.1)
        request_status("paused", "paused")
        server.released.set()
        runner.join(timeout=300)
        assert not runner.is_alive(), "the paused campaign did not stop within 300 s"
        assert outcome["first"].status == CampaignStatus.PAUSED
        with sessions() as s:
            round_ = rounds_of(s, "paused")[1]
            assert round_.stage == Stage.JUDGE and round_.claimed_by is None
            assert count(s, Judgment) == 4  # the batch in flight is kept, no further one
        assert run_campaign(config).status == CampaignStatus.DONE
        assert judge_calls(server) == 6
    with sessions() as s:
        assert count(s, Judgment, Judgment.status == JudgmentStatus.OK) == 6
    with pytest.raises(StateConflict, match="is done and cannot be cancelled"):
        request_status("paused", "cancelled")  # a finished campaign has nothing to stop
    with sessions.begin() as s:
        store_campaign(s, other := config.model_copy(update={"name": "never-run"}))
    request_status("never-run", "cancelled")
    cancelled = run_campaign(other)
    assert cancelled.status == CampaignStatus.CANCELLED and "cancelled" in cancelled.error


@sqlite_only  # a comparison of settings
def test_a_name_taken_by_other_settings_is_refused_and_left_alone(store_env, sessions, policy):
    from store.campaigns import create_campaign

    first = tiny_campaign("taken", policy)
    with sessions.begin() as s:
        create_campaign(s, "taken", first.model_dump(mode="json", by_alias=True))
    outcome = run_campaign(tiny_campaign("taken", policy, prompts_per_round=7))
    assert outcome.status == CampaignStatus.FAILED
    assert "campaign 'taken' is stored with other settings" in outcome.error
    with sessions() as s:
        (campaign,) = s.scalars(select(Campaign))
        assert (
            campaign.status == CampaignStatus.PENDING and campaign.config["prompts_per_round"] == 6
        )
        assert count(s, Round) == 0


@sqlite_only  # the build stage's check
def test_an_answer_too_long_for_a_forward_pass_fails_the_round_at_build(
    store_env, sessions, policy
):
    config = tiny_campaign("too-long", policy, rounds=1, cut={"max_tokens_per_micro_batch": 40})
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.FAILED
    assert "\n" not in outcome.error
    assert "round 1: RoundFailure: build: answer " in outcome.error
    assert "cut.max_tokens_per_micro_batch=40" in outcome.error
    with sessions() as s:
        failed = rounds_of(s, "too-long")[1]
        assert (failed.status, failed.stage) == (RoundStatus.FAILED, Stage.BUILD)
        assert failed.error == outcome.error
        assert "Traceback" in failed.error_detail and "check_training_fits" in failed.error_detail
        assert count(s, TrainingRun) == 0  # nothing trained, nothing recorded
    status = subprocess.run(
        [CUTLOOP, "status", "too-long"], capture_output=True, text=True, env=dict(os.environ)
    )
    assert status.returncode == 0
    assert "round 1 failed at build:" in status.stdout and "Traceback" in status.stdout


@sqlite_only  # placement, before any write
def test_memory_no_node_offers_is_refused_before_any_actor_starts(store_env, sessions, policy):
    import ray

    config = tiny_campaign("greedy", policy, rounds=1, generator={"memory_gb": 100_000})
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.FAILED
    assert "generator.memory_gb=100000 is more than any Ray node offers" in outcome.error
    half = round(ray.cluster_resources()["memory"] / 2**30 * 0.6, 1)  # each fits, not both
    both = tiny_campaign(
        "both", policy, rounds=1, generator={"memory_gb": half}, trainer={"memory_gb": half}
    )
    outcome = run_campaign(both)
    assert "generator.memory_gb × 1 replicas + trainer.memory_gb" in outcome.error
    assert "is more than the Ray cluster offers" in outcome.error
    with sessions() as s:
        assert count(s, Generation) == 0


@sqlite_only  # files on the node
def test_checkpoint_retention_keeps_the_last_and_the_best_on_the_trainers_node(
    store_env, sessions, policy
):
    from store.summaries import round_summaries

    config = tiny_campaign(
        "pruned", policy, rounds=3, checkpoints={"keep_last": 1, "keep_best": True}
    )
    assert run_campaign(config).status == CampaignStatus.DONE
    with sessions() as s:
        campaign = s.scalars(select(Campaign).where(Campaign.name == "pruned")).one()
        scores = {r.index: r.win_rate for r in round_summaries(s, campaign.id)}
        stored = sorted(s.scalars(select(Checkpoint.version)))
    assert stored == [1, 2, 3]  # the store keeps every row: it records what was trained
    best = max((1, 2), key=lambda v: scores[v])  # round 3 is not evaluated when v3 publishes
    left = {p.name for p in (store_env / "campaigns" / "pruned" / "checkpoints").iterdir()}
    assert left == {"v3", f"v{best}"}


@sqlite_only  # selection reads no SQL
def test_answers_cut_off_at_max_new_tokens_are_left_out_of_training_unless_asked_for(
    store_env, sessions, policy
):
    # 40 new tokens: the random policy stops early in some answers, not all
    sampling = {"sampling": {"max_new_tokens": 40, "seed": 0}}
    config = tiny_campaign(
        "complete-only", policy, rounds=1, selection={"train_on_truncated": False},
        generator=sampling,
    )  # fmt: skip
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.DONE, outcome.error
    with sessions() as s:
        finished = {g.id: g.finish_reason for g in s.scalars(select(Generation))}
        hyper = s.scalars(select(TrainingRun.hyperparameters)).one()
    complete = sorted(i for i, reason in finished.items() if reason == "stop")
    truncated = sorted(i for i, reason in finished.items() if reason == "length")
    assert complete and truncated  # else the settings above test nothing
    assert sorted(hyper["generation_ids"]) == complete
    assert hyper["truncated_left_out"] == hyper["left_out"] == len(truncated)

    # every answer cut off (4 new tokens), none with train_on_truncated: nothing to learn
    config = tiny_campaign(
        "cut-off", policy, rounds=1, selection={"train_on_truncated": False},
        generator={"sampling": {"max_new_tokens": 4, "seed": 0}},
    )  # fmt: skip
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.FAILED
    assert (
        "nothing to learn from in the 0 usable judged answers (it needs a negative answer; "
        "6 left out by the selection settings, 6 of them cut off at max_new_tokens "
        "(selection.train_on_truncated is off))"
    ) in outcome.error
    with sessions() as s:
        assert rounds_of(s, "cut-off")[1].stage == Stage.BUILD
        assert count(s, TrainingRun) == 1  # the first campaign's
