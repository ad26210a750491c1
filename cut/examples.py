"""From judged triplets to token rows: Align-P, Align-N and Misalign (docs/cut.md).

A negative example becomes a *pair* of rows sharing the very same response ids (the
response is tokenized once and appended to both contexts), so the per-position ratio
p_al / p_mis compares like with like. Prompt tokens are never targets; a prompt that is
too long loses tokens from its left, the response is never cut.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Literal

from cut.spans import Span, covered_positions, token_offsets
from cut.templates import FAKE_POSITIVE_JUDGMENT, PromptTemplate

MisalignContext = Literal["plain", "fake_positive"]


class Polarity(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"


class RowKind(IntEnum):
    ALIGN_P = 0
    ALIGN_N = 1
    MISALIGN = 2
    CHOSEN = 3  # DPO (cut.dpo): the positive answer of a pair, plain context
    REJECTED = 4  # DPO: the negative answer of a pair, plain context


def polarity_of(judgment: str) -> Polarity:
    """The GPT-4 prompt's rule: positive iff the judgment starts with the word 'perfect'
    (case-insensitive, leading whitespace and punctuation ignored)."""
    stripped = judgment.lstrip(string.whitespace + string.punctuation)
    first_word = stripped.split(maxsplit=1)[0] if stripped else ""
    first_word = first_word.rstrip(string.punctuation)
    return Polarity.POSITIVE if first_word.lower() == "perfect" else Polarity.NEGATIVE


@dataclass(frozen=True)
class JudgedExample:
    instruction: str
    response: str
    judgment: str
    polarity: Polarity
    spans: tuple[Span, ...] = ()  # characters of `response` the judgment faults (cut/spans.py)


@dataclass(frozen=True)
class Row:
    """One training sequence: `input_ids[prompt_length:]` are the targets."""

    input_ids: tuple[int, ...]
    prompt_length: int
    kind: RowKind

    @property
    def response_length(self) -> int:
        return len(self.input_ids) - self.prompt_length


@dataclass(frozen=True)
class TrainingItem:
    """A judged example as rows: (Align-P,) or (Align-N, Misalign); for DPO a pair of
    answers as (Chosen, Rejected). Items are never split across micro-batches, so both
    rows of a pair always meet in one forward pass."""

    example_index: int
    rows: tuple[Row, ...]
    # response positions (EOS excluded) whose characters a judged span covers
    span_positions: frozenset[int] = frozenset()

    @property
    def is_negative(self) -> bool:
        return self.rows[0].kind == RowKind.ALIGN_N

    @property
    def response_ids(self) -> tuple[int, ...]:
        row = self.rows[0]
        return row.input_ids[row.prompt_length :]


@dataclass(frozen=True)
class BuildReport:
    items: list[TrainingItem]
    too_long: list[int]  # example indexes whose response alone exceeds max_length


class ExampleBuilder:
    """Tokenizes judged examples into rows for one tokenizer, template and length limit."""

    def __init__(
        self,
        tokenizer: object,
        template: PromptTemplate,
        max_length: int,
        misalign_context: MisalignContext = "plain",
    ) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self.misalign_context = misalign_context
        eos = getattr(tokenizer, "eos_token_id", None)
        if eos is None:
            raise ValueError("the tokenizer has no eos_token_id; CUT targets end with EOS")
        self.eos_token_id: int = eos

    @property
    def pad_token_id(self) -> int:
        """Any valid id will do: padding is masked out of attention and is never a target."""
        pad = getattr(self.tokenizer, "pad_token_id", None)
        return self.eos_token_id if pad is None else pad

    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])  # type: ignore[operator]

    def _row(self, context: str, response_ids: list[int], kind: RowKind) -> Row:
        prompt_ids = self._encode(context, self.template.adds_special_tokens)
        room = self.max_length - len(response_ids)
        prompt_ids = prompt_ids[-room:]  # left truncation: the response is never cut
        return Row(tuple(prompt_ids + response_ids), len(prompt_ids), kind)

    def _response_ids(self, example: JudgedExample) -> list[int] | None:
        """The answer's tokens and EOS; None when they leave no room for a context token."""
        ids = [*self._encode(example.response, False), self.eos_token_id]
        return ids if len(ids) < self.max_length else None

    def _span_positions(self, example: JudgedExample, response_ids: list[int]) -> frozenset[int]:
        """The response positions a judged span covers, with the very ids `_response_ids`
        gave (offsets are read from the same encoding)."""
        if not example.spans:
            return frozenset()
        ids, offsets = token_offsets(self.tokenizer, example.response)
        assert ids == response_ids[:-1], "offsets come from another encoding of the response"
        return covered_positions(offsets, example.spans)

    def _misalign_context(self, instruction: str) -> str:
        if self.misalign_context == "fake_positive":
            return self.template.judged(instruction, FAKE_POSITIVE_JUDGMENT)
        return self.template.plain(instruction)

    def build_one(self, index: int, example: JudgedExample) -> TrainingItem | None:
        """None when the response (plus one context token) does not fit in max_length."""
        response_ids = self._response_ids(example)
        if response_ids is None:
            return None
        x, ids = example.instruction, response_ids
        if example.polarity == Polarity.POSITIVE:
            return TrainingItem(index, (self._row(self.template.plain(x), ids, RowKind.ALIGN_P),))
        align_n = self._row(self.template.judged(x, example.judgment), ids, RowKind.ALIGN_N)
        misalign = self._row(self._misalign_context(x), ids, RowKind.MISALIGN)
        item = TrainingItem(index, (align_n, misalign), self._span_positions(example, ids))
        assert misalign.input_ids[misalign.prompt_length :] == item.response_ids
        return item

    def build_preference(
        self, index: int, chosen: JudgedExample, rejected: JudgedExample
    ) -> TrainingItem | None:
        """A DPO pair: both answers in the plain context; None when one does not fit."""
        rows = []
        for example, kind in ((chosen, RowKind.CHOSEN), (rejected, RowKind.REJECTED)):
            response_ids = self._response_ids(example)
            if response_ids is None:
                return None
            rows.append(self._row(self.template.plain(example.instruction), response_ids, kind))
        return TrainingItem(index, tuple(rows))

    def build(self, examples: Sequence[JudgedExample]) -> BuildReport:
        items: list[TrainingItem] = []
        too_long: list[int] = []
        for index, example in enumerate(examples):
            item = self.build_one(index, example)
            if item is None:
                too_long.append(index)
            else:
                items.append(item)
        return BuildReport(items, too_long)


def downsample_positives(
    items: Iterable[TrainingItem], ratio: float | None, seed: int
) -> list[TrainingItem]:
    """Keep every negative and int(ratio * n_negative) positives chosen at random (seeded),
    or all positives when there are fewer or `ratio` is None. Input order is preserved."""
    items = list(items)
    if ratio is None:
        return items
    positives = [i for i, item in enumerate(items) if not item.is_negative]
    n_negative = len(items) - len(positives)
    keep_n = int(ratio * n_negative)
    if keep_n >= len(positives):
        return items
    kept = set(random.Random(seed).sample(positives, keep_n))
    return [item for i, item in enumerate(items) if item.is_negative or i in kept]
