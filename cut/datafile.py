"""Reading judged examples from files, validated before any training starts.

Two formats:
- `.json`: the reference code's list of {instruction, input, output, judgment}; a null
  judgment or one starting with "Perfect" is positive, unless `polarity` says otherwise
  (cutloop's exports of judgments written by people carry it).
- `.jsonl`: one {instruction, response, judgment, polarity?} object per line; without
  `polarity` the judgment decides, as above.
Either may carry `spans`: [[start, end], ...], the character ranges of the answer
(`output` / `response`) the judgment faults, which `cut.flagging: spans` trains on.
An empty or "$ERROR$" judgment is a failed judge call: counted, reported, never trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from cut.examples import JudgedExample, Polarity, polarity_of
from cut.spans import Span, check_spans

FAILED_JUDGMENT_MARKERS = ("", "$ERROR$")


class DataFileError(ValueError):
    """A malformed data file; the message names the file, the record and the field."""


class _WithSpans(BaseModel):
    """`spans` checked against the answer they index (`answer_field`)."""

    model_config = ConfigDict(extra="ignore")
    answer_field: ClassVar[str]
    spans: list[list[int]] | None = None

    @model_validator(mode="after")
    def _spans_in_answer(self) -> Self:
        if self.spans:
            check_spans(self.spans, len(getattr(self, self.answer_field)))
        return self

    @property
    def checked_spans(self) -> tuple[Span, ...]:
        return check_spans(self.spans or [], len(getattr(self, self.answer_field)))


class ReferenceRecord(_WithSpans):
    answer_field = "output"
    instruction: str
    input: str = ""
    output: str
    judgment: str | None
    polarity: Polarity | None = None  # cutloop's own exports: a person's word, kept


class JsonlRecord(_WithSpans):
    answer_field = "response"
    instruction: str
    response: str
    judgment: str
    polarity: Polarity | None = None


@dataclass
class JudgedData:
    examples: list[JudgedExample] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # records whose judge call had failed

    @property
    def n_positive(self) -> int:
        return sum(e.polarity == Polarity.POSITIVE for e in self.examples)

    @property
    def n_negative(self) -> int:
        return len(self.examples) - self.n_positive


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "record"
    return f"field '{where}': {first['msg']} (got {first.get('input')!r})"


def _from_reference(record: ReferenceRecord) -> JudgedExample | None:
    if record.judgment is not None and record.judgment.strip() in FAILED_JUDGMENT_MARKERS:
        return None
    instruction = f"{record.instruction}\n\n{record.input}" if record.input else record.instruction
    judgment = record.judgment or "Perfect."
    polarity = record.polarity or (
        Polarity.POSITIVE if record.judgment is None else polarity_of(judgment)
    )
    return JudgedExample(instruction, record.output, judgment, polarity, record.checked_spans)


def _from_jsonl(record: JsonlRecord) -> JudgedExample | None:
    if record.judgment.strip() in FAILED_JUDGMENT_MARKERS:
        return None
    polarity = record.polarity or polarity_of(record.judgment)
    return JudgedExample(
        record.instruction, record.response, record.judgment, polarity, record.checked_spans
    )


def _parse(path: Path, label: str, raw: Any, jsonl: bool) -> JudgedExample | None:
    try:
        if jsonl:
            return _from_jsonl(JsonlRecord.model_validate(raw))
        return _from_reference(ReferenceRecord.model_validate(raw))
    except ValidationError as error:
        raise DataFileError(f"{path}: {label}: {_describe(error)}") from None


def read_records(path: str | Path) -> list[tuple[str, Any]]:
    """(label, object) per record of a JSON list or a JSONL file; the label ("line 3",
    "record 2") is what error messages cite."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        records: list[tuple[str, Any]] = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError as error:
                raise DataFileError(f"{path}: line {number}: invalid JSON ({error.msg})") from None
        return records
    try:
        loaded = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataFileError(f"{path}: line {error.lineno}: invalid JSON ({error.msg})") from None
    if not isinstance(loaded, list):
        raise DataFileError(f"{path}: expected a JSON list of records, got {type(loaded).__name__}")
    return [(f"record {index}", raw) for index, raw in enumerate(loaded)]


def load_judged_file(path: str | Path) -> JudgedData:
    path = Path(path)
    records = read_records(path)
    jsonl = path.suffix == ".jsonl"
    data = JudgedData()
    for index, (label, raw) in enumerate(records):
        example = _parse(path, label, raw, jsonl)
        if example is None:
            data.failed.append(index)
        else:
            data.examples.append(example)
    return data
