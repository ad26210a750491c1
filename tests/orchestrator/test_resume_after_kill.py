"""SIGKILL a real `cutloop run` in every stage, one after the other, and check that each
restart continues from the store: nothing generated or judged twice, no judge or
annotator call paid twice, no lost rows, training resumed from its last saved step."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from sqlalchemy import select

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
    Stage,
    TrainingStep,
)
from tests.judge.fake_openai import FakeOpenAI
from tests.orchestrator.campaigns import (
    count,
    flagged_token_count,
    judge_calls,
    openai_judge,
    save_tiny_policy,
    tiny_campaign,
)
from workers.failpoints import FAILPOINT_ENV, MARKER_ENV

CUTLOOP = str(Path(sys.executable).with_name("cutloop"))

# (failpoint, round index and stage the store must show after the kill)
KILLS = [
    ("evaluate", 0, Stage.EVALUATE),  # round 0, after the annotator was paid for a batch
    ("sample", 1, Stage.SAMPLE),  # inside the stage's transaction
    ("generate", 1, Stage.GENERATE),  # after the first batch was committed
    ("judge", 1, Stage.JUDGE),  # after the calls were paid, before their commit
    ("build", 1, Stage.BUILD),
    ("train-step-2", 1, Stage.TRAIN),  # in the trainer, step 1 saved
    ("train", 1, Stage.TRAIN),  # trained and saved, nothing recorded
    ("publish", 1, Stage.PUBLISH),
    ("swap", 1, Stage.SWAP),
    ("evaluate", 1, Stage.EVALUATE),
]
# The whole chain runs on PostgreSQL; on SQLite, the kills inside a stage's transaction,
# between its batches, between paid calls and their commit, and in the trainer: where a
# file store could keep what a killed writer left (a lock, a half-applied write).
SQLITE_KILLS = ["sample", "generate", "judge", "train-step-2"]


def kill_at(
    failpoint: str | None, config: Path, env: dict[str, str], log: Path, before_kill=None
) -> int:
    """Run `cutloop run` until it reaches `failpoint`, call `before_kill(process)`, then
    SIGKILL it; with None, run it to the end. Returns the exit status."""
    marker = log.with_suffix(".reached")
    extra = {FAILPOINT_ENV: failpoint, MARKER_ENV: str(marker)} if failpoint else {}
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [CUTLOOP, "run", str(config)],
            env={**env, **extra},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # its Ray processes too, for the clean-up below
            # a shell that started pytest in the background left SIGINT ignored: Ctrl-C
            # below must reach a child that reacts to it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            if failpoint is None:
                return process.wait(timeout=600)
            deadline = time.monotonic() + 600
            while not marker.exists():  # the failpoint writes it, then waits forever
                assert process.poll() is None, f"exited before {failpoint}: {log.read_text()}"
                assert time.monotonic() < deadline, f"{failpoint} not reached"
                time.sleep(0.1)
            if before_kill is not None:
                before_kill(process)
            process.send_signal(signal.SIGKILL)
            return process.wait(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):  # Ray's agents outlive the driver
                os.killpg(process.pid, signal.SIGKILL)


def test_a_run_killed_in_every_stage_resumes_from_the_store(
    db_url, sessions, tmp_path, cutloop_env
):
    policy = save_tiny_policy(tmp_path / "policy")
    env = {**cutloop_env, "CUTLOOP_DATABASE_URL": db_url}
    eval_set = tmp_path / "eval.json"
    eval_set.write_text(json.dumps(
        [{"instruction": f"Question {i}", "output": "an answer " * i} for i in range(1, 6)]
    ))  # fmt: skip
    with FakeOpenAI() as server:
        config = tiny_campaign(
            "killed",
            policy,
            rounds=1,
            judge=openai_judge(server.base_url),
            cut={"save_state_every": 1, "lambda": 1.0},  # flags about half the tokens
            evaluation={"eval_set": "file", "path": str(eval_set), "annotator": "alpaca_eval_gpt4",
                        "endpoint": {"base_url": server.base_url, "api_key_env": "NO_KEY"}},
        )  # fmt: skip
        path = tmp_path / "campaign.yaml"
        path.write_text(yaml.safe_dump(config.model_dump(mode="json", by_alias=True)))

        def interrupt_pauses(process):  # Ctrl-C asks the driver to pause (it is stuck)
            process.send_signal(signal.SIGINT)
            deadline = time.monotonic() + 60
            with sessions() as s:
                while s.scalars(select(Campaign.status)).one() != CampaignStatus.PAUSED:
                    assert process.poll() is None, "cutloop run exited on Ctrl-C"
                    assert time.monotonic() < deadline, "Ctrl-C did not pause within 60 s"
                    s.expire_all()
                    time.sleep(0.1)  # polling the store, bounded by the deadline

        kills = [k for k in KILLS if db_url.startswith("postgresql") or k[0] in SQLITE_KILLS]
        for number, (failpoint, index, stage) in enumerate(kills):
            log = tmp_path / f"{number}-{failpoint}.log"
            before_kill = interrupt_pauses if failpoint == "generate" else None
            assert kill_at(failpoint, path, env, log, before_kill) < 0
            with sessions() as s:
                rounds = list(s.scalars(select(Round).order_by(Round.index)))
                assert (rounds[-1].index, rounds[-1].stage) == (index, stage), failpoint
                if failpoint == "generate":
                    assert count(s, Generation) == 4  # the first batch, committed
                if failpoint == "judge":
                    assert count(s, Judgment) == 0 and judge_calls(server) == 4
        assert kill_at(None, path, env, tmp_path / "final.log") == 0
        assert judge_calls(server) == 6  # every answer judged once: the cache held the rest
        annotated = [r for r in server.requests if "leaderboard" in r.content]
        assert len(annotated) == 10  # every eval item of both rounds annotated once
    status = subprocess.run([CUTLOOP, "status", "killed"], env=env, capture_output=True, text=True)
    assert status.returncode == 0 and "killed — done" in status.stdout

    with sessions() as s:
        assert s.scalars(select(Campaign.status)).one() == CampaignStatus.DONE
        assert [r.stage for r in s.scalars(select(Round).order_by(Round.index))] == [Stage.DONE] * 2
        assert count(s, Prompt, Prompt.used_in_round_id.is_not(None)) == 6
        assert count(s, Generation) == 6
        assert count(s, Judgment, Judgment.status == JudgmentStatus.OK) == 6
        assert count(s, Judgment) == 6
        assert list(s.scalars(select(TrainingStep.step).order_by(TrainingStep.step))) == [1, 2, 3]
        # killed after training: the rerun trains no step, its flags come from the state
        assert flagged_token_count(s) > 0
        assert [c.version for c in s.scalars(select(Checkpoint))] == [1]
        assert [r.n for r in s.scalars(select(EvalRun).order_by(EvalRun.id))] == [5, 5]
        assert count(s, EvalItem) == 10
