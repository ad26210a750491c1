"""Where a campaign's instructions come from: the built-in verifiable set, a JSON/JSONL
file, or a Hugging Face dataset (needs network); and its evaluation items.

A file's records are plain ({instruction}; an eval set's also carry the reference) or
IFEval's ({prompt, instruction_id_list, kwargs}), whose constraints the rule judge and
the IFEval accuracies check."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cut.datafile import DataFileError, read_records
from judge.ifeval_ids import IFEvalRecord, is_ifeval_record, read_ifeval_record
from judge.instructions import VerifiableInstruction, builtin_instructions
from judge.rules import Constraint

if TYPE_CHECKING:  # the settings' module imports torch (cut.config); reading files does not
    from orchestrator.config import CampaignConfig, EvaluationSettings, InstructionSource


@dataclass(frozen=True)
class EvalItem:
    instruction: str
    reference: str | None  # None: the round-0 policy's answer becomes the reference
    reference_generator: str | None = None  # who wrote the reference (AlpacaEval's `generator`)
    dataset: str | None = None  # AlpacaEval's source dataset of the instruction
    constraints: tuple[Constraint, ...] | None = None  # None: none known (not verifiable)
    checks: str | None = None  # an IFEval record's ids and kwargs: part of the set's identity


def _field(path: Path, label: str, raw: object, field: str) -> str:
    value = raw.get(field) if isinstance(raw, dict) else None
    if not isinstance(value, str) or not value.strip():
        raise DataFileError(
            f"{path}: {label}: field '{field}' must be a non-empty string (got {value!r})"
        )
    return value


def _ifeval(path: Path, label: str, raw: dict[str, Any]) -> IFEvalRecord:
    try:
        return read_ifeval_record(raw)
    except ValueError as error:
        raise DataFileError(f"{path}: {label}: {error}") from None


@dataclass(frozen=True)
class FileInstruction:
    label: str  # where it is in the file ("line 3"), for messages
    text: str
    record: IFEvalRecord | None  # None: a plain record, no constraints known


def read_instruction_file(path: Path) -> list[FileInstruction]:
    """Every record of an instruction file, plain or IFEval's; DataFileError naming the
    file, the record and the field or IFEval id that cannot be used."""
    read = []
    for label, raw in read_records(path):
        if is_ifeval_record(raw):
            record = _ifeval(path, label, raw)
            read.append(FileInstruction(label, record.instruction.text, record))
        else:
            read.append(FileInstruction(label, _field(path, label, raw, "instruction"), None))
    return read


def train_instructions(source: InstructionSource) -> list[str]:
    """Distinct instructions in source order."""
    if source.kind == "builtin":
        texts = [i.text for i in builtin_instructions()["train"]]
    elif source.kind == "file":
        texts = [i.text for i in read_instruction_file(source.path)]
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


def _eval_item(path: Path, label: str, raw: Any) -> EvalItem:
    if is_ifeval_record(raw):
        record = _ifeval(path, label, raw)
        text, constraints = record.instruction.text, record.instruction.constraints
        return EvalItem(text, None, constraints=constraints, checks=record.checks)
    return EvalItem(
        _field(path, label, raw, "instruction"),
        _field(path, label, raw, "output"),
        _optional(path, label, raw, "generator"),
        _optional(path, label, raw, "dataset"),
    )


def read_eval_set(path: Path) -> list[EvalItem]:
    """AlpacaEval's records of {instruction, output (the reference), generator, dataset}
    (generator and dataset may be missing), or IFEval's, whose reference is the round-0
    policy's answer."""
    return [_eval_item(path, label, raw) for label, raw in read_records(path)]


def eval_items(settings: EvaluationSettings) -> list[EvalItem]:
    """The held-out built-in split (no references), or a file of AlpacaEval's or IFEval's
    records."""
    if settings.eval_set == "builtin_held_out":
        items = [EvalItem(i.text, None, constraints=i.constraints)
                 for i in builtin_instructions()["held_out"]]  # fmt: skip
    else:
        if settings.path is None:
            raise DataFileError("evaluation.path: required when eval_set is 'file'")
        items = read_eval_set(settings.path)
    return items[: settings.max_instructions] if settings.max_instructions else items


def eval_set_sha256(items: list[EvalItem]) -> str:
    """What a campaign is evaluated on: every instruction and reference, in order, and
    the IFEval checks a file gives (the built-in set's follow from its texts)."""
    rows = [[i.instruction, i.reference, *([i.checks] if i.checks else [])] for i in items]
    payload = json.dumps(rows, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def reference_name(items: list[EvalItem]) -> str:
    """Who wrote the references: the file's generator, or the round-0 policy."""
    if any(i.reference is None for i in items):
        return "round 0"
    generators = {i.reference_generator for i in items}
    (generator,) = generators if len(generators) == 1 else {None}
    return generator or "eval set"


def verifiable_instructions(config: CampaignConfig) -> list[VerifiableInstruction]:
    """Every instruction whose constraints the campaign knows, for its rule judge and
    rule annotator: the built-in set's, and its files' IFEval records."""
    known = [i for split in builtin_instructions().values() for i in split]
    if config.instructions.kind == "file":
        read = read_instruction_file(config.instructions.path)
        known += [i.record.instruction for i in read if i.record is not None]
    if config.evaluation.eval_set == "file":
        known += [VerifiableInstruction(i.instruction, i.constraints)
                  for i in eval_items(config.evaluation) if i.constraints is not None]  # fmt: skip
    return known
