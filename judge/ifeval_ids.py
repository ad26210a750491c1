"""IFEval's records — {key, prompt, instruction_id_list, kwargs}, as in IFEval's
input_data.jsonl, the google/IFEval dataset and IFBench's data — read as verifiable
instructions: each IFEval id with its kwargs becomes the cutloop constraint that gives
IFEval's verdict (tests/judge/test_ifeval_oracle.py holds them to the reference code).

An id without such a constraint is refused, never skipped: a constraint left out would
make every answer look better than IFEval scores it. So is a kwarg IFEval would replace
with a random value (missing, falsy, out of range): the check would not be the prompt's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from judge.ifeval_rules import (
    CapitalWordFrequency,
    ConstrainedResponse,
    IFEvalBulletPoints,
    IFEvalEndWith,
    IFEvalHighlights,
    IFEvalJson,
    IFEvalKeywordFrequency,
    IFEvalKeywords,
    IFEvalPlaceholders,
    IFEvalPostscript,
    IFEvalSections,
    IFEvalTitle,
    ParagraphFirstWord,
    SentenceCount,
    TwoResponses,
)
from judge.instructions import VerifiableInstruction
from judge.rules import (
    Constraint,
    ForbiddenWords,
    LetterFrequency,
    MaxWords,
    MinWords,
    NoCommas,
    Paragraphs,
    Quotation,
    Relation,
    RepeatRequest,
)

Kwargs = Mapping[str, Any]


def _given(kwargs: Kwargs, name: str) -> Any:
    """A kwarg as IFEval's evaluation passes it on: falsy ones (null, 0, "") are dropped."""
    value = kwargs.get(name)
    if not value:
        raise ValueError(f"kwarg '{name}' is missing")
    return value


def _count(kwargs: Kwargs, name: str) -> int:
    value = _given(kwargs, name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"kwarg '{name}' must be a positive integer (got {value!r})")
    return value


def _text(kwargs: Kwargs, name: str) -> str:
    value = _given(kwargs, name)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"kwarg '{name}' must be a non-empty string (got {value!r})")
    return value.strip()


def _words(kwargs: Kwargs, name: str) -> tuple[str, ...]:
    value = _given(kwargs, name)
    if not isinstance(value, list) or not all(isinstance(w, str) and w for w in value):
        raise ValueError(f"kwarg '{name}' must be a list of non-empty strings (got {value!r})")
    return tuple(value)


def _relation(kwargs: Kwargs, name: str) -> Relation:
    value = _given(kwargs, name)
    if value not in ("less than", "at least"):
        raise ValueError(f"kwarg '{name}' must be 'less than' or 'at least' (got {value!r})")
    return cast(Relation, value)


def _letter(kwargs: Kwargs) -> str:
    value = _given(kwargs, "letter")
    if not (isinstance(value, str) and len(value) == 1 and value.isascii() and value.isalpha()):
        raise ValueError(f"kwarg 'letter' must be one letter a-z (got {value!r})")
    return value.lower()


def _number_words(kwargs: Kwargs) -> Constraint:
    n = _count(kwargs, "num_words")
    return MaxWords(n - 1) if _relation(kwargs, "relation") == "less than" else MinWords(n)


def _nth_paragraph(kwargs: Kwargs) -> Constraint:
    paragraphs, nth = _count(kwargs, "num_paragraphs"), _count(kwargs, "nth_paragraph")
    if nth > paragraphs:
        raise ValueError(f"kwarg 'nth_paragraph' is past num_paragraphs ({nth} > {paragraphs})")
    return ParagraphFirstWord(paragraphs, nth, _text(kwargs, "first_word").lower())


CONSTRAINT_OF: dict[str, Callable[[Kwargs], Constraint]] = {
    "punctuation:no_comma": lambda k: NoCommas(),
    "startend:quotation": lambda k: Quotation(),
    "startend:end_checker": lambda k: IFEvalEndWith(_text(k, "end_phrase")),
    "combination:repeat_prompt": lambda k: RepeatRequest(_text(k, "prompt_to_repeat")),
    "combination:two_responses": lambda k: TwoResponses(),
    "keywords:existence": lambda k: IFEvalKeywords(_words(k, "keywords")),
    "keywords:forbidden_words": lambda k: ForbiddenWords(_words(k, "forbidden_words")),
    "keywords:frequency": lambda k: IFEvalKeywordFrequency(
        _text(k, "keyword"), _count(k, "frequency"), _relation(k, "relation")
    ),
    "keywords:letter_frequency": lambda k: LetterFrequency(
        _letter(k), _count(k, "let_frequency"), _relation(k, "let_relation")
    ),
    "length_constraints:number_words": _number_words,
    "length_constraints:number_sentences": lambda k: SentenceCount(
        _count(k, "num_sentences"), _relation(k, "relation")
    ),
    "length_constraints:number_paragraphs": lambda k: Paragraphs(_count(k, "num_paragraphs")),
    "length_constraints:nth_paragraph_first_word": _nth_paragraph,
    "detectable_content:number_placeholders": lambda k: IFEvalPlaceholders(
        _count(k, "num_placeholders")
    ),
    "detectable_content:postscript": lambda k: IFEvalPostscript(_text(k, "postscript_marker")),
    "detectable_format:number_bullet_lists": lambda k: IFEvalBulletPoints(_count(k, "num_bullets")),
    "detectable_format:constrained_response": lambda k: ConstrainedResponse(),
    "detectable_format:number_highlighted_sections": lambda k: IFEvalHighlights(
        _count(k, "num_highlights")
    ),
    "detectable_format:multiple_sections": lambda k: IFEvalSections(
        _text(k, "section_spliter"), _count(k, "num_sections")
    ),
    "detectable_format:json_format": lambda k: IFEvalJson(),
    "detectable_format:title": lambda k: IFEvalTitle(),
    "change_case:capital_word_frequency": lambda k: CapitalWordFrequency(
        _count(k, "capital_frequency"), _relation(k, "capital_relation")
    ),
}


def constraint_of(instruction_id: str, kwargs: Kwargs) -> Constraint:
    """The constraint IFEval checks for `instruction_id` with `kwargs`; ValueError naming
    the id when cutloop has none, or naming the kwarg that is unusable."""
    build = CONSTRAINT_OF.get(instruction_id)
    if build is None:
        raise ValueError(f"instruction id {instruction_id!r} is not one cutloop can check")
    try:
        return build(kwargs)
    except ValueError as error:
        raise ValueError(f"instruction id {instruction_id!r}: {error}") from None


def is_ifeval_record(raw: object) -> bool:
    return isinstance(raw, dict) and "instruction_id_list" in raw


@dataclass(frozen=True)
class IFEvalRecord:
    instruction: VerifiableInstruction
    checks: str  # the ids and the kwargs used, canonical JSON: what identifies the checks


def read_ifeval_record(raw: dict[str, Any]) -> IFEvalRecord:
    """One record; ValueError naming the field, or the id, that cannot be used."""
    prompt, ids, kwargs = raw.get("prompt"), raw["instruction_id_list"], raw.get("kwargs")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"field 'prompt' must be a non-empty string (got {prompt!r})")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ValueError(f"field 'instruction_id_list' must be a list of ids (got {ids!r})")
    if not (isinstance(kwargs, list) and len(kwargs) == len(ids)
            and all(isinstance(k, dict) for k in kwargs)):  # fmt: skip
        raise ValueError("field 'kwargs' must be a list of one object per instruction id")
    constraints = tuple(constraint_of(i, k) for i, k in zip(ids, kwargs, strict=True))
    used = [{name: value for name, value in k.items() if value} for k in kwargs]
    checks = json.dumps([ids, used], sort_keys=True, ensure_ascii=False)
    return IFEvalRecord(VerifiableInstruction(prompt, constraints), checks)
