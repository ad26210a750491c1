"""The baselines and data levers through the whole loop: a DPO campaign with several
seeded samples per prompt, each round trained afresh from the round-0 policy on every
answer collected so far, only where a prompt's samples disagree."""

from __future__ import annotations

import json
import math

import pytest
from sqlalchemy import select

from orchestrator.campaign_run import run_campaign
from store.models import CampaignStatus, Generation, TrainingRun, TrainingStep
from tests.db_fixtures import sqlite_only
from tests.judge.fake_openai import FakeOpenAI
from tests.orchestrator.campaigns import openai_judge, rounds_of, save_tiny_policy, tiny_campaign


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return save_tiny_policy(tmp_path_factory.mktemp("policy"))


@sqlite_only  # the method
def test_a_dpo_campaign_trains_fresh_each_round_on_disagreeing_prompts(
    store_env,
    sessions,
    policy,
    tmp_path,
):
    """The judge flips a coin per answer (a hash of it): a prompt's samples disagree
    sometimes, not always."""
    instructions = tmp_path / "coin.jsonl"
    lines = [json.dumps({"instruction": f"Write word {i}. [[coin]]"}) for i in range(20)]
    instructions.write_text("\n".join(lines))
    with FakeOpenAI() as server:
        config = tiny_campaign(
            "dpo-fresh",
            policy,
            method="dpo",
            fresh_each_round=True,
            prompts_per_round=4,
            instructions={"kind": "file", "path": str(instructions)},
            judge=openai_judge(server.base_url),
            selection={"disagreeing_only": True},
            generator={"sampling": {"n": 4, "temperature": 1.0}},
        )
        assert run_campaign(config).status == CampaignStatus.DONE
    with sessions() as s:
        rounds = rounds_of(s, "dpo-fresh")
        runs = [
            s.scalars(select(TrainingRun).where(TrainingRun.round_id == r.id)).one()
            for r in rounds[1:]
        ]
        assert [run.hyperparameters["round_ids"] for run in runs] == [
            [rounds[1].id],
            [rounds[1].id, rounds[2].id],
        ]
        for run in runs:
            ids = run.hyperparameters["generation_ids"]
            generations = s.scalars(select(Generation).where(Generation.id.in_(ids))).all()
            by_prompt = {}
            for g in generations:
                by_prompt.setdefault(g.prompt_id, set()).add(g.sample_index)
            assert all(len(samples) >= 2 for samples in by_prompt.values())  # disagreeing
            assert run.hyperparameters["negative"] > 0 and run.hyperparameters["positive"] > 0
            first = s.scalars(
                select(TrainingStep).where(
                    TrainingStep.training_run_id == run.id, TrainingStep.step == 1
                )
            ).one()
            assert first.loss == pytest.approx(math.log(2), rel=1e-4)  # starts at its reference
        assert len(runs[1].hyperparameters["generation_ids"]) > len(
            runs[0].hyperparameters["generation_ids"]
        )  # round 2 trains on both rounds' answers
