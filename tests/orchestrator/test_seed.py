"""The campaign's `seed` seeds what no more specific seed does: two campaigns with the same
seed sample and train alike, another seed differs (transformers engine, a real Ray, a
tiny random policy, SQLite: the seed's use does not depend on the store)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from orchestrator.campaign_run import run_campaign
from orchestrator.config import CampaignConfig
from store.engine import make_engine, session_factory
from store.models import (
    Campaign,
    CampaignStatus,
    Generation,
    Prompt,
    Round,
    TrainingRun,
    TrainingStep,
)
from store.summaries import round_summaries
from tests.orchestrator.campaigns import save_tiny_policy, tiny_campaign


def seeded(name: str, policy, seed: int) -> CampaignConfig:
    """A tiny one-round campaign that sets only the campaign's seed."""
    settings = tiny_campaign(name, policy, rounds=1).model_dump(mode="json", by_alias=True)
    del settings["generator"]["sampling"]["seed"], settings["cut"]["seed"]
    return CampaignConfig.model_validate({**settings, "seed": seed})


def draws(url: str, name: str) -> tuple[list[str], list[float], list[dict]]:
    """The campaign's sampled answers in prompt order, its training losses by step, and
    its rounds as the status table summarises them (judgments, losses, scores)."""
    engine = make_engine(url)
    with session_factory(engine)() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.name == name)).one()
        rounds = select(Round.id).where(Round.campaign_id == campaign.id)
        texts = session.scalars(
            select(Generation.text)
            .join(Prompt, Generation.prompt_id == Prompt.id)
            .where(Generation.round_id.in_(rounds))
            .order_by(Prompt.instruction, Generation.sample_index)
        ).all()
        losses = session.scalars(
            select(TrainingStep.loss)
            .join(TrainingRun, TrainingStep.training_run_id == TrainingRun.id)
            .where(TrainingRun.round_id.in_(rounds))
            .order_by(TrainingStep.step)
        ).all()
        summaries = [
            {k: v for k, v in vars(r).items() if k != "index"}
            for r in round_summaries(session, campaign.id)
        ]
    engine.dispose()
    return list(texts), list(losses), summaries


def test_the_campaign_seed_decides_sampling_and_training(tmp_path, monkeypatch, ray_local):
    url = f"sqlite:///{tmp_path / 'cutloop.db'}"
    monkeypatch.setenv("CUTLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTLOOP_DATABASE_URL", url)
    policy = save_tiny_policy(tmp_path / "policy")
    configs = [seeded("first", policy, 1), seeded("again", policy, 1), seeded("other", policy, 2)]
    assert (configs[0].generator.sampling.seed, configs[0].cut.seed) == (1, 1)
    for config in configs:
        assert run_campaign(config).status == CampaignStatus.DONE, config.name
    first, again, other = (draws(url, c.name) for c in configs)
    assert first[0] and first[1], "the campaign sampled and trained nothing"
    assert first[2][1]["final_loss"] is not None
    assert first == again  # the same machine, the same seed: the same campaign
    assert first[0] != other[0]


@pytest.mark.parametrize(
    "explicit", [{"generator": {"sampling": {"seed": None}}}, {"cut": {"seed": 5}}]
)
def test_a_seed_set_in_its_own_place_is_kept(explicit):
    config = CampaignConfig.model_validate({"name": "x", "seed": 9, **explicit})
    assert config.generator.sampling.seed == (None if "generator" in explicit else 9)
    assert config.cut.seed == (5 if "cut" in explicit else 9)
    assert CampaignConfig.model_validate(config.model_dump(mode="json", by_alias=True)) == config
