"""Tiny campaigns for the loop's tests: a random Llama (or another architecture) with a
character tokenizer, served by the transformers backend, so a whole round takes seconds
on two cores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cut.examples import Polarity
from orchestrator.config import CampaignConfig
from store.models import (
    Campaign,
    FlaggedTokens,
    Generation,
    Judgment,
    JudgmentStatus,
    Round,
    TrainingRun,
)
from tests.tiny_models import TINY_MODELS, char_tokenizer


def save_tiny_policy(directory: Path, architecture: str = "llama", chat: bool = True) -> Path:
    """A model directory: the random model and, beside it, the character tokenizer (with
    a chat template when `chat`)."""
    tokenizer = char_tokenizer(chat=chat)
    TINY_MODELS[architecture](len(tokenizer)).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def tiny_campaign(name: str, policy: Path, **changes: Any) -> CampaignConfig:
    base = {
        "name": name,
        "policy": str(policy),
        "rounds": 2,
        "prompts_per_round": 6,
        "commit_every": 4,
        "selection": {"train_on_truncated": True},  # a random policy rarely stops early
        "generator": {
            "backend": "hf",
            "memory_gb": 1,  # declared to Ray: a tiny model needs far less
            "sampling": {"max_new_tokens": 12, "seed": 0},
        },
        "trainer": {"memory_gb": 1},
        "cut": {
            "finetuning": "full",
            "batch_size": 2,
            "micro_batch_size": 2,
            "max_length": 256,
            "learning_rate": 1e-3,
            "precision": "fp32",
        },
        "evaluation": {"max_instructions": 5, "max_new_tokens": 12},
    }
    return CampaignConfig.model_validate(_merge(base, changes))


def openai_judge(base_url: str, **settings: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": base_url, "model": "judge", "api_key_env": "NO_KEY",
            "max_retries": 0, "timeout_s": 5, **settings}  # fmt: skip


def rounds_of(session, name: str) -> list[Round]:
    campaign = session.scalars(select(Campaign).where(Campaign.name == name)).one()
    return list(
        session.scalars(select(Round).where(Round.campaign_id == campaign.id).order_by(Round.index))
    )


def count(session: Session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def judge_calls(server) -> int:
    """Judgment requests the server answered (AlpacaEval ranking prompts excluded)."""
    return sum("leaderboard" not in r.content for r in server.requests)


def flagged_token_count(session: Session) -> int:
    """Checks every training run stored one flagged-token row per negative answer it
    trained on, and that each row's tokens are its own answer's tokens at its positions
    (the character tokenizer: one token per character, then EOS) — a row filed under
    another answer would not match. Returns the flagged tokens in all."""
    tokenizer = char_tokenizer(chat=True)
    total = 0
    for run in session.scalars(select(TrainingRun)):
        trained = run.hyperparameters["generation_ids"]
        negative = session.scalars(
            select(Judgment.generation_id).where(
                Judgment.generation_id.in_(trained),
                Judgment.judge_name == run.hyperparameters["judge"],
                Judgment.status == JudgmentStatus.OK,
                Judgment.polarity == Polarity.NEGATIVE,
            )
        ).all()
        rows = session.scalars(
            select(FlaggedTokens).where(FlaggedTokens.training_run_id == run.id)
        ).all()
        assert len(negative) == run.hyperparameters["negative"] > 0, run.round_id
        assert sorted(r.generation_id for r in rows) == sorted(negative), run.round_id
        for row in rows:
            text = session.get_one(Generation, row.generation_id).text
            ids = [*tokenizer.convert_tokens_to_ids(list(text)), tokenizer.eos_token_id]
            assert row.token_ids == [ids[p] for p in row.positions], row.generation_id
            total += len(row.positions)
    return total
