"""`cutloop eval`: a campaign's evaluation for any checkpoint outside a campaign. It runs
as an evaluation-only campaign (`rounds: 0`, the checkpoint as its policy), so it is
stored, resumed and browsed like any other, and a rerun pays for no annotation twice."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from orchestrator.config import CampaignConfig
from orchestrator.instructions import eval_set_sha256, read_eval_set


def eval_campaign(
    model: str,
    eval_set: Path,
    evaluation: dict[str, Any],
    generator: dict[str, Any],
    name: str | None = None,
) -> CampaignConfig:
    """The campaign evaluating `model` on `eval_set`; its default name tells the model
    apart and hashes everything that makes its scores, so the same command resumes."""
    policy = str(Path(model).resolve()) if Path(model).exists() else model
    settings = {**evaluation, "eval_set": "file", "path": str(eval_set.resolve())}
    if name is None:
        made_of = [policy, eval_set_sha256(read_eval_set(eval_set)), settings, generator]
        digest = hashlib.sha256(json.dumps(made_of, sort_keys=True).encode()).hexdigest()
        name = f"eval-{Path(policy).name}-{digest[:8]}"
    return CampaignConfig.model_validate(
        {"name": name, "policy": policy, "rounds": 0, "evaluation": settings,
         "generator": generator}
    )  # fmt: skip
