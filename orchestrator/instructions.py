"""Where a campaign's instructions come from: the built-in verifiable set, a JSON/JSONL
file, or a Hugging Face dataset (needs network); and its evaluation items."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cut.datafile import DataFileError, read_records
from judge.instructions import builtin_instructions
from orchestrator.config import EvaluationSettings, InstructionSource


@dataclass(frozen=True)
class EvalItem:
    instruction: str
    reference: str | None  # None: the round-0 policy's answer becomes the reference
    reference_generator: str | None = None  # who wrote the reference (AlpacaEval's `generator`)
    dataset: str | None = None  # AlpacaEval's source dataset of the instruction


def _field(path: Path, label: str, raw: object, field: str) -> str:
    value = raw.get(field) if isinstance(raw, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise DataFileError(
            f"{path}: {label}: field '{field}' must be a non-empty string (got {value!r})"
        )
    return value


def train_instructions(source: InstructionSource) -> list[str]:
    """Distinct instructions in source order."""
    if source.kind == "builtin":
        texts = [i.text for i in builtin_instructions()["train"]]
    elif source.kind == "file":
        texts = [
            _field(source.path, label, raw, "instruction")
            for label, raw in read_records(source.path)
        ]
    else:
        from datasets import load_dataset

        rows = load_dataset(source.dataset, split=source.split)
        texts = [
            "\n\n".join(filter(None, (str(row[source.field]), row.get(source.input_field or ""))))
            for row in rows
        ]
    return list(dict.fromkeys(texts))


def _optional(path: Path, label: str, raw: dict, field: str) -> str | None:
    value = raw.get(field)
    if value is not None and not isinstance(value, str):
        raise DataFileError(f"{path}: {label}: field '{field}' must be a string (got {value!r})")
    return value


def read_eval_set(path: Path) -> list[EvalItem]:
    """AlpacaEval's format: records of {instruction, output (the reference), generator,
    dataset}; generator and dataset may be missing."""
    return [
        EvalItem(
            _field(path, label, raw, "instruction"),
            _field(path, label, raw, "output"),
            _optional(path, label, raw, "generator"),
            _optional(path, label, raw, "dataset"),
        )
        for label, raw in read_records(path)
    ]


def eval_items(settings: EvaluationSettings) -> list[EvalItem]:
    """The held-out built-in split (no references), or an AlpacaEval-format file."""
    if settings.eval_set == "builtin_held_out":
        items = [EvalItem(i.text, None) for i in builtin_instructions()["held_out"]]
    else:
        if settings.path is None:
            raise DataFileError("evaluation.path: required when eval_set is 'file'")
        items = read_eval_set(settings.path)
    return items[: settings.max_instructions] if settings.max_instructions else items


def eval_set_sha256(items: list[EvalItem]) -> str:
    """What a campaign is evaluated on: every instruction and reference, in order."""
    payload = json.dumps([[i.instruction, i.reference] for i in items], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def reference_name(items: list[EvalItem]) -> str:
    """Who wrote the references: the file's generator, or the round-0 policy."""
    if any(i.reference is None for i in items):
        return "round 0"
    generators = {i.reference_generator for i in items}
    (generator,) = generators if len(generators) == 1 else {None}
    return generator or "eval set"
