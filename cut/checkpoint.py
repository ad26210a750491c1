"""Checkpoints: merged HF directories that transformers and vLLM load, and resumable
training states (trainable weights + optimizer + scheduler + step + RNG + the flagged
tokens reported so far).

Every directory carries `cutloop.json` with the resolved config and the step, so a
checkpoint can be audited and a run resumed with the same settings.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from cut.config import CUTConfig
from cut.reports import FlaggedTokens

METADATA_FILE = "cutloop.json"
TRAINABLE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
FLAGGED_FILE = "flagged.json"
LATEST_STATE = "latest"  # names the directory of the last whole training state


def _write_metadata(directory: Path, config: CUTConfig, step: int, extra: dict[str, Any]) -> None:
    payload = {"config": config.model_dump(mode="json", by_alias=True), "step": step, **extra}
    (directory / METADATA_FILE).write_text(json.dumps(payload, indent=2))


def save_merged(
    model: nn.Module,
    tokenizer: Any,
    out_dir: str | Path,
    config: CUTConfig,
    step: int,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Merge a LoRA adapter into its base (in place) and write safetensors + tokenizer."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    merge = getattr(model, "merge_and_unload", None)
    merged = merge() if callable(merge) else model
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    _write_metadata(out, config, step, extra or {})
    return out


def save_adapter(model: nn.Module, out_dir: str | Path, config: CUTConfig, step: int) -> Path:
    """Write a LoRA model's adapter alone (peft format: adapter_config.json +
    adapter_model.safetensors), for engines that serve one cumulative adapter."""
    if not callable(getattr(model, "merge_and_unload", None)):
        raise ValueError("save_adapter needs a LoRA (peft) model; use save_merged for full weights")
    out = Path(out_dir)
    model.save_pretrained(out)
    _write_metadata(out, config, step, {})
    return out


def _latest_state(directory: Path) -> Path | None:
    """The last whole state saved under `directory`, None when there is none."""
    pointer = directory / LATEST_STATE
    return directory / pointer.read_text().strip() if pointer.is_file() else None


def saved_step(directory: str | Path) -> int:
    """The step of the last whole state saved under `directory` (0: none)."""
    state = _latest_state(Path(directory))
    return 0 if state is None else int(json.loads((state / METADATA_FILE).read_text())["step"])


def save_training_state(
    directory: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: CUTConfig,
    step: int,
    flagged: Mapping[int, FlaggedTokens],
) -> Path:
    """Each state goes to a directory of its own under `directory` and becomes the one
    to resume from only once whole (the `latest` file is replaced atomically), so a kill
    mid-save leaves the previous state intact. `flagged`: the reports of the steps done,
    by example index; a resumed run starts from them, so its report covers the steps
    before the state too."""
    root = Path(directory)
    final = root / f"step-{step}"
    out = final.with_name(final.name + ".partial")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    trainable = {n: p.detach().contiguous() for n, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, out / TRAINABLE_FILE)
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
        },
        out / OPTIMIZER_FILE,
    )
    (out / FLAGGED_FILE).write_text(json.dumps([asdict(report) for report in flagged.values()]))
    _write_metadata(out, config, step, {})
    shutil.rmtree(final, ignore_errors=True)  # written before, by a run killed before pointing
    out.rename(final)
    pointer = root / f"{LATEST_STATE}.partial"
    pointer.write_text(final.name)
    os.replace(pointer, root / LATEST_STATE)
    for earlier in root.glob("step-*"):
        if earlier != final:
            shutil.rmtree(earlier, ignore_errors=True)
    return final


def load_training_state(
    directory: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: CUTConfig,
) -> tuple[int, dict[int, FlaggedTokens]]:
    """Restore a state saved by `save_training_state`; returns the steps already done and
    their flagged-token reports.

    Refuses a state written with a different config, since the step plan (shuffling,
    batch cuts, schedule) would not line up."""
    src = _latest_state(Path(directory))
    if src is None:
        raise ValueError(f"{directory}: no training state saved there")
    metadata = json.loads((src / METADATA_FILE).read_text())
    saved = CUTConfig.model_validate(metadata["config"])
    if saved != config:
        diff = {
            name: (getattr(saved, name), getattr(config, name))
            for name in CUTConfig.model_fields
            if getattr(saved, name) != getattr(config, name)
        }
        raise ValueError(f"{src}: training state was saved with other settings {diff}")
    weights = load_file(src / TRAINABLE_FILE)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    state = torch.load(src / OPTIMIZER_FILE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    reports = [FlaggedTokens(**r) for r in json.loads((src / FLAGGED_FILE).read_text())]
    return int(metadata["step"]), {report.example_index: report for report in reports}
