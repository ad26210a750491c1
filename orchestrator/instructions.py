"""Where a campaign's instructions come from: the built-in verifiable set, a JSON/JSONL
file, or a Hugging Face dataset (needs network); and its evaluation items."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cut.datafile import DataFileError, read_records
from judge.instructions import builtin_instructions
from orchestrator.config import EvaluationSettings, InstructionSource


@dataclass(frozen=True)
class EvalItem:
    instruction: str
    reference: str | None  # None: the round-0 policy's answer becomes the reference


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


def eval_items(settings: EvaluationSettings) -> list[EvalItem]:
    """The held-out built-in split (no references), or a file of {instruction, output}
    records in AlpacaEval's format (output = the reference answer)."""
    if settings.eval_set == "builtin_held_out":
        items = [EvalItem(i.text, None) for i in builtin_instructions()["held_out"]]
    else:
        if settings.path is None:
            raise DataFileError("evaluation.path: required when eval_set is 'file'")
        items = [
            EvalItem(
                _field(settings.path, label, raw, "instruction"),
                _field(settings.path, label, raw, "output"),
            )
            for label, raw in read_records(settings.path)
        ]
    return items[: settings.max_instructions] if settings.max_instructions else items
