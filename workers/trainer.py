"""The trainer: runs a round's CUT training in its own process (a Ray actor, given a GPU
when the cluster has one) and writes the merged checkpoint the generators swap to.

Checkpoints and training states live on the trainer's node, under its `node_home()`:
the driver never reads them. The trainer digests them, sends them (or a LoRA round's
factors) to the generators through Ray's object store (no shared filesystem needed) and
prunes them.

A round restarted after a crash continues from its last saved training state, if the
campaign saves one (`cut.save_state_every`), else from the round's start; the per-step
metrics of the steps before the saved state are kept in `steps.jsonl` beside it and
their flagged tokens in the state itself, so the round's record is whole either way.
Run it with `max_concurrency=2`, so `progress` can answer while `train` runs.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from cut.checkpoint import save_merged, saved_step
from cut.config import CUTConfig
from cut.examples import JudgedExample
from cut.reports import FlaggedTokens, StepMetrics
from judge.jsonlines import append_json_line, read_json_lines
from store.home import claim_directory, node_home
from workers.engine import SwapError
from workers.failpoints import failpoint
from workers.lora_delta import LoraDelta, load_delta, lora_delta, save_delta

STEPS_FILE = "steps.jsonl"


@dataclass(frozen=True)
class RoundTraining:
    checkpoint: str
    steps: list[StepMetrics]
    flagged: list[FlaggedTokens]
    n_align_p: int
    n_negative: int
    too_long: list[int] = field(default_factory=list)


def _earlier_steps(state_dir: Path, saved: int) -> list[StepMetrics]:
    """Metrics of the steps the saved state already covers; later lines are redone."""
    steps = [StepMetrics(**entry) for entry in read_json_lines(state_dir / STEPS_FILE)]
    return [s for s in steps if s.step <= saved]


def directory_sha256(directory: Path) -> str:
    """One digest over the weight files (names and bytes), in name order."""
    digest = hashlib.sha256()
    for file in sorted(directory.glob("*.safetensors")):
        digest.update(file.name.encode())
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def mapped(path: Path) -> np.ndarray:
    """A file's bytes as a read-only array over its pages: Ray copies them into its object
    store straight from the page cache, a third of the time reading them first takes
    (bench/weight_sync.py)."""
    with path.open("rb") as handle:
        pages = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return np.frombuffer(pages, dtype=np.uint8)


def weight_paths(location: str) -> list[Path]:
    files = sorted(Path(location).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no checkpoint at {location} on the trainer's node")
    return files


class Trainer:
    def __init__(self) -> None:
        self._latest: StepMetrics | None = None

    def progress(self) -> StepMetrics | None:
        return self._latest

    def train(
        self,
        policy: str,
        examples: list[JudgedExample],
        config: CUTConfig,
        campaign: tuple[str, str],
        version: int,
        base_version: int,
        extra: dict | None = None,
    ) -> RoundTraining:
        """CUT on `examples` starting from the `policy` checkpoint. `campaign` is (name,
        identity): files go to this node's campaigns/NAME, claimed for that campaign; the
        merged result appears at checkpoints/v`version` only once complete (written
        aside, renamed); a LoRA round's factors beside it, for the generators (they
        serve `base_version`, the `policy` trained on)."""
        from cut.modeling import load_policy
        from cut.trainer import train_cut

        directory = node_home() / "campaigns" / campaign[0]
        claim_directory(directory, campaign[1])
        state = directory / "rounds" / str(version) / "train-state"
        state.mkdir(parents=True, exist_ok=True)
        resume_at = saved_step(state) if config.save_state_every else 0
        steps = _earlier_steps(state, resume_at)
        (state / STEPS_FILE).write_text("".join(json.dumps(asdict(s)) + "\n" for s in steps))

        def on_step(metrics: StepMetrics) -> None:
            self._latest = metrics
            append_json_line(state / STEPS_FILE, asdict(metrics))
            failpoint(f"train-step-{metrics.step}")  # before this step's state is saved

        model, tokenizer = load_policy(policy, config)
        model, result = train_cut(
            model,
            tokenizer,
            examples,
            config,
            callback=on_step,
            state_dir=state if config.save_state_every else None,
            resume=resume_at > 0,
        )
        final = Path(self.checkpoint_path(campaign[0], version))
        staging = final.with_name(final.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        step = len(steps) + len(result.steps)
        if config.finetuning == "lora":
            save_delta(lora_delta(model, base_version), staging)
        save_merged(model, tokenizer, staging, config, step=step, extra=extra)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        del model  # a colocated engine wakes into the memory the trainer gives back
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return RoundTraining(
            checkpoint=str(final),
            steps=steps + result.steps,
            flagged=list(result.flagged.values()),
            n_align_p=result.n_align_p,
            n_negative=result.n_negative,
            too_long=result.too_long,
        )

    def checkpoint_path(self, campaign: str, version: int) -> str:
        return str(node_home() / "campaigns" / campaign / "checkpoints" / f"v{version}")

    def digest(self, location: str) -> str:
        """The sha256 of a checkpoint on this node (FileNotFoundError when absent)."""
        weight_paths(location)
        return directory_sha256(Path(location))

    def weight_files(self, location: str) -> dict[str, np.ndarray]:
        """A checkpoint's safetensors files (name -> contents as uint8 arrays), for the
        generators: returned through Ray's object store, they reach engines on any node.
        Raw files, not tensors: nothing to decode here or encode there, and numpy arrays
        cross the object store without a copy (bytes would be pickled: 2.7x slower)."""
        try:
            return {p.name: mapped(p) for p in weight_paths(location)}
        except FileNotFoundError as error:
            raise SwapError(str(error)) from None
        except ValueError as error:  # mmap refuses an empty file
            raise SwapError(f"{location}: unreadable weight file ({error})") from None

    def delta(self, location: str) -> LoraDelta:
        """The LoRA factors saved with a checkpoint (SwapError for a full fine-tune's)."""
        delta = load_delta(Path(location))
        if delta is None:
            raise SwapError(f"{location}: no LoRA delta on the trainer's node")
        return delta

    def describe(self, location: str, files: dict[str, str]) -> None:
        """Write text files (the model card, the campaign's config) into a checkpoint on
        this node, if it is still there; its digest covers only the weights."""
        if not Path(location).is_dir():
            return
        for name, text in files.items():
            (Path(location) / name).write_text(text)

    def prune(self, locations: list[str]) -> list[str]:
        """Delete these checkpoints from this node; returns those that were there."""
        removed = [x for x in locations if Path(x).is_dir()]
        for location in removed:
            shutil.rmtree(location)
        return removed
