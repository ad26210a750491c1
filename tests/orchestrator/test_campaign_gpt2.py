"""A round of the loop with a policy of another architecture than Llama: GPT-2 has no
chat template (the Alpaca contexts, in training and generation), no Llama layer names
(LoRA picks its Conv1D layers), and weights stored inputs-first, into which the
generators merge the round's LoRA delta."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCard
from safetensors.torch import load_file
from sqlalchemy import select

from orchestrator.campaign_run import run_campaign
from store.models import CampaignStatus, Checkpoint, EvalItem, EvalRun
from tests.db_fixtures import sqlite_only
from tests.orchestrator.campaigns import (
    flagged_token_count,
    rounds_of,
    save_tiny_policy,
    tiny_campaign,
)
from workers.engine import EngineConfig, SamplingConfig
from workers.generator import Generator


@sqlite_only  # the model is the point
def test_a_gpt2_policy_trains_a_lora_round_and_the_generators_serve_it(
    store_env, sessions, tmp_path
):
    policy = save_tiny_policy(tmp_path / "gpt2", "gpt2", chat=False)
    config = tiny_campaign(
        "gpt2",
        policy,
        rounds=1,
        commit_every=8,  # the 5 eval instructions in one generate call, as below
        cut={"finetuning": "lora", "lora_dropout": 0.0, "learning_rate": 1e-2},
    )
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.DONE and outcome.error is None
    with sessions() as s:
        assert flagged_token_count(s) > 0
        checkpoint = s.scalars(select(Checkpoint)).one()
        round_1 = rounds_of(s, "gpt2")[1]
        run = s.scalars(select(EvalRun).where(EvalRun.round_id == round_1.id)).one()
        items = s.scalars(
            select(EvalItem).where(EvalItem.eval_run_id == run.id).order_by(EvalItem.position)
        ).all()
        instructions, served = [i.instruction for i in items], [i.output for i in items]
    card = ModelCard.load(Path(checkpoint.location) / "README.md")  # a LoRA round, it says
    assert "lora" in card.data.tags and "LoRA (rank 16), merged" in card.text
    # only the LoRA targets changed: every Conv1D weight of both blocks
    before = load_file(policy / "model.safetensors")
    after = load_file(f"{checkpoint.location}/model.safetensors")
    changed = {name.split(".", 3)[-1] for name in before if not before[name].equal(after[name])}
    assert changed == {f"{layer}.weight" for layer in ("attn.c_attn", "attn.c_proj", "mlp.c_fc",
                                                       "mlp.c_proj")}  # fmt: skip
    # round 1 was evaluated by the generators after they merged the delta: they answer
    # as the trainer's merged checkpoint does
    greedy = SamplingConfig(temperature=0, max_new_tokens=config.evaluation.max_new_tokens)
    fresh = Generator(EngineConfig(model=checkpoint.location, backend="hf"))
    assert served == [c[0].text for c in fresh.generate(instructions, greedy)]
    start = Generator(EngineConfig(model=str(policy), backend="hf"))
    assert served != [c[0].text for c in start.generate(instructions, greedy)]
