"""Small builders of stored rows for the store tests."""

from __future__ import annotations

from sqlalchemy.orm import Session

from store.campaigns import create_campaign, ensure_round
from store.models import JudgmentStatus, Split
from store.results import add_generations, add_prompts


def campaign_with_round(session: Session, name: str = "c1", n_prompts: int = 3):
    campaign = create_campaign(session, name, {"rounds": 2})
    round_ = ensure_round(session, campaign, 0)
    prompt_ids = add_prompts(
        session, campaign.id, [f"instruction {i}" for i in range(n_prompts)], "test", Split.TRAIN
    )
    return campaign, round_, prompt_ids


def generation_rows(round_id: int, prompt_ids: list[int], text: str = "answer") -> list[dict]:
    return [
        {
            "round_id": round_id,
            "prompt_id": prompt_id,
            "sample_index": 0,
            "policy_version": 0,
            "text": f"{text} {prompt_id}",
            "prompt_tokens": 5,
            "completion_tokens": 7,
            "finish_reason": "stop",
            "sampling": {"temperature": 0.7},
        }
        for prompt_id in prompt_ids
    ]


def judgment_row(generation_id: int, status=JudgmentStatus.OK, text="Perfect.", **extra) -> dict:
    row = {
        "generation_id": generation_id, "judge_name": "rules", "judge_model": None,
        "status": status, "text": text if status == JudgmentStatus.OK else None,
        "polarity": "positive" if status == JudgmentStatus.OK else None,
        "error": None if status == JudgmentStatus.OK else "HTTP 500", "latency_s": 0.2,
        "tokens_in": 10, "tokens_out": 3, "cost_usd": 0.0,
    }  # fmt: skip
    return row | extra


def seeded_generations(session: Session, n_prompts: int = 3):
    campaign, round_, prompt_ids = campaign_with_round(session, n_prompts=n_prompts)
    return campaign, round_, add_generations(session, generation_rows(round_.id, prompt_ids))
