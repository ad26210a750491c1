"""Offline alignment: CUT on a file of judged examples, with a before/after summary."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cut.checkpoint import save_merged
from cut.config import CUTConfig
from cut.datafile import JudgedData
from cut.evaluate import LikelihoodReport, measure
from cut.modeling import load_policy
from cut.reports import StepMetrics, TrainResult
from cut.trainer import train_cut
from orchestrator.models import resolve_model
from orchestrator.progress import training_progress

REPORT_FILE = "train_report.json"


def _summary(data: JudgedData, result: TrainResult, before, after) -> Table:
    table = Table(title="CUT offline training")
    table.add_column("metric")
    table.add_column("before", justify="right")
    table.add_column("after", justify="right")
    rows = [
        ("CUT loss / token", "loss"),
        ("log p, flagged tokens, plain context (want ↓)", "flagged_logp"),
        ("log p, negatives, judged context (want ↑)", "align_n_logp"),
        ("log p, positives, plain context (want ↑)", "align_p_logp"),
        ("log p, negatives, plain context", "misalign_logp"),
    ]
    for label, field in rows:
        table.add_row(label, f"{getattr(before, field):.4f}", f"{getattr(after, field):.4f}")
    table.caption = (
        f"{len(data.examples)} judged examples ({data.n_negative} negative, "
        f"{data.n_positive} positive; {result.n_align_p} positives trained after down-sampling), "
        f"{len(data.failed)} failed judgments skipped, {len(result.too_long)} too long; "
        f"{len(result.steps)} steps; {before.flagged_fraction:.1%} of negative-response "
        "tokens flagged before training"
    )
    return table


def _scalars(report: LikelihoodReport) -> dict[str, float]:
    return {k: v for k, v in asdict(report).items() if isinstance(v, float)}


def train_offline(
    model_name: str, data: JudgedData, out_dir: Path, config: CUTConfig, console: Console
) -> Path:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own progress bar is the one to watch
    model, tokenizer = load_policy(resolve_model(model_name), config)
    before: LikelihoodReport = measure(model, tokenizer, data.examples, config)

    with training_progress() as progress:
        task = progress.add_task("train", total=None, loss=0.0, flagged=0.0, tokens_per_s=0.0)

        def on_step(m: StepMetrics) -> None:
            progress.update(
                task, completed=m.step, total=m.total_steps, loss=m.loss,
                flagged=m.flagged_fraction, tokens_per_s=m.tokens_per_s,
            )  # fmt: skip

        started = time.perf_counter()
        model, result = train_cut(model, tokenizer, data.examples, config, callback=on_step)
        seconds = time.perf_counter() - started

    after = measure(model, tokenizer, data.examples, config, flagged=before.flagged)
    report = {
        "before": _scalars(before),
        "after": _scalars(after),
        "train_seconds": seconds,
        "failed_judgments": data.failed,
        "too_long": result.too_long,
        "steps": [asdict(s) for s in result.steps],
        "flagged": [asdict(f) for f in result.flagged.values()],
    }
    save_merged(model, tokenizer, out_dir, config, step=len(result.steps))
    (out_dir / REPORT_FILE).write_text(json.dumps(report, indent=2))
    console.print(_summary(data, result, before, after))
    return out_dir
