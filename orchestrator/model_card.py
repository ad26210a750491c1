"""A checkpoint that describes itself: a model card (README.md in the Hugging Face
convention: YAML metadata, then what made the checkpoint, how it scored and how to load
it) and the campaign's config beside the weights, in a directory `huggingface-cli
upload` takes as it is."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from orchestrator.models import hub_id
from store.browse import round_of
from store.campaigns import campaign_by_name
from store.models import Campaign, Round, TrainingRun
from store.summaries import RoundSummary, round_summary
from store.training import checkpoint_of

CARD = "README.md"
CONFIG = "cutloop-campaign.yaml"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def model_card(
    config: dict[str, Any], summary: RoundSummary, trained: dict[str, Any] | None
) -> str:
    """The card of round `summary.index`'s checkpoint of the campaign `config`."""
    cut = config.get("cut", {})
    lora = cut.get("finetuning") == "lora"
    method = cut.get("method", "cut")
    metadata = {
        "base_model": hub_id(config["policy"]),
        "library_name": "transformers",
        "tags": ["cutloop", "alignment", method, *(["lora"] if lora else [])],
    }
    keys = ("method", "finetuning", *(("lora_r",) if lora else ()), "lambda", "alpha",
            "flagging", "learning_rate", "epochs", "batch_size")  # fmt: skip
    settings = {key: cut[key] for key in keys if key in cut}
    counts = (
        f"{trained['positive']} positive and {trained['negative']} negative judged answers "
        f"({trained['left_out']} left out by the selection settings), judged by "
        f"{trained['judge']}"
        if trained
        else "no training record was found"
    )
    tuning = (
        f"LoRA (rank {cut.get('lora_r')}), merged into the base weights"
        if lora
        else "full fine-tuning"
    )
    return f"""---
{yaml.safe_dump(metadata, sort_keys=False).strip()}
---

# {config["name"]}, round {summary.index}

Round {summary.index} of the cutloop campaign `{config["name"]}`: `{config["policy"]}`
aligned with judgments by {method.upper()} ({tuning}), trained on {counts}.

## Evaluation

| P-strict | P-loose | I-strict | I-loose | win rate | LC win rate | p vs round 0 |
|---|---|---|---|---|---|---|
| {_score(summary.prompt_strict)} | {_score(summary.prompt_loose)} | \
{_score(summary.instruction_strict)} | {_score(summary.instruction_loose)} | \
{_score(summary.win_rate)} | {_score(summary.lc_win_rate)} | \
{"–" if summary.mcnemar_p is None else f"{summary.mcnemar_p:.3g}"} |

IFEval accuracies (%) and AlpacaEval win rates (%) against {summary.reference or "the reference"} \
on the campaign's evaluation set, as cutloop's evaluate stage scored them.

## Settings that matter

```yaml
{yaml.safe_dump(settings, sort_keys=False).strip()}
```
The whole campaign config is in `{CONFIG}` beside this card.

## Loading

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("THIS_DIRECTORY")
tokenizer = AutoTokenizer.from_pretrained("THIS_DIRECTORY")
```
```bash
vllm serve THIS_DIRECTORY
```
"""


def card_files(session: Session, campaign: Campaign, round_: Round) -> dict[str, str]:
    """The files that describe round `round_`'s checkpoint: its card, the config."""
    run = session.scalar(select(TrainingRun).where(TrainingRun.round_id == round_.id))
    card = model_card(campaign.config, round_summary(session, round_),
                      run.hyperparameters if run else None)  # fmt: skip
    return {CARD: card, CONFIG: yaml.safe_dump(campaign.config, sort_keys=False)}


def export_checkpoint(session: Session, campaign_name: str, index: int, target: Path) -> Path:
    """Copy round `index`'s checkpoint to `target` (which must not exist) with its model
    card and the campaign's config; LookupError naming what is missing."""
    campaign = campaign_by_name(session, campaign_name)
    if campaign is None:
        raise LookupError(f"no campaign named {campaign_name!r}")
    checkpoint = checkpoint_of(session, campaign.id, index)
    if checkpoint is None:
        raise LookupError(f"campaign {campaign_name!r} published no checkpoint in round {index}")
    source = Path(checkpoint.location)
    if not source.is_dir():
        raise LookupError(f"{source}: not on this machine (it lives on the trainer's node)")
    if target.exists():
        raise LookupError(f"{target} exists; export to a new directory")
    shutil.copytree(source, target)
    for name, text in card_files(session, campaign, round_of(session, campaign.id, index)).items():
        (target / name).write_text(text)  # today's card, whatever the copy held
    return target
