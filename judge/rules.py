"""Verifiable-instruction constraints in the spirit of IFEval, each with a checker that
says precisely what is wrong and where.

`violation(response)` returns None when the constraint holds, else one sentence a model
can learn from, e.g. 'The response uses commas ("sea, sky") although the instruction
forbids commas.' `faulty_spans(response)` says where a violated constraint fails: the
character spans of the offending text (every comma, the words past a limit, ...), or
none when the fault is an absence (a missing keyword, title or postscript).
`describe()` is the sentence added to the instruction; `sample(rng)` draws parameters
for the instruction generator.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from cut.spans import Span, merge_spans

WORD = re.compile(r"[A-Za-z0-9'’-]+")
SENTENCE_END = re.compile(r"[.!?]+(?:\s|$)")
IFEVAL_WORD = re.compile(r"\w+")  # IFEval's words (nltk's RegexpTokenizer(r"\w+"))
KEYWORDS = ("river", "light", "future", "garden", "signal", "balance", "memory", "engine",
            "harvest", "bridge", "silence", "pattern")  # fmt: skip
FILLER_WORDS = ("very", "really", "basically", "actually", "just", "thing")
ENDINGS = ("Is there anything else I can help with?", "That is all for today.",
           "Let me know what you think.")  # fmt: skip


Relation = Literal["less than", "at least"]  # IFEval's two: count < n, count >= n


def meets(found: int, relation: Relation, n: int) -> bool:
    return found < n if relation == "less than" else found >= n


def word_pattern(word: str, whole: bool) -> str:
    """`word`, case aside, as a whole word or anywhere (IFEval's keyword checks)."""
    return rf"\b{re.escape(word)}\b" if whole else re.escape(word)


def excerpt(text: str, start: int, end: int, margin: int = 8) -> str:
    """The matched span with a few characters either side, on one line."""
    left, right = max(0, start - margin), min(len(text), end + margin)
    return " ".join(text[left:right].split())


def spans_of(pattern: str | re.Pattern[str], text: str, flags: int = 0) -> tuple[Span, ...]:
    """Every match of `pattern` in `text`, as spans."""
    return merge_spans(m.span() for m in re.finditer(pattern, text, flags))


def tail_from(text: str, start: int) -> tuple[Span, ...]:
    """From `start` to the end of the text's last non-blank character."""
    end = len(text.rstrip())
    return ((start, end),) if end > start else ()


def last_sentence(text: str) -> tuple[Span, ...]:
    """The text's final sentence: after the last sentence end that is not the text's own."""
    end = len(text.rstrip())
    starts = [m.end() for m in SENTENCE_END.finditer(text) if m.end() < end]
    start = starts[-1] if starts else 0
    start += len(text[start:end]) - len(text[start:end].lstrip())
    return ((start, end),) if end > start else ()


@dataclass(frozen=True)
class Constraint:
    kind: ClassVar[str]
    group: ClassVar[str]  # at most one constraint of a group per instruction

    def describe(self) -> str:
        raise NotImplementedError

    def violation(self, response: str) -> str | None:
        raise NotImplementedError

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """Where the violated constraint fails in `response`; () for an absence."""
        return ()

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls()


@dataclass(frozen=True)
class AllLowercase(Constraint):
    kind, group = "all_lowercase", "case"

    def describe(self) -> str:
        return "Your entire response must be in lowercase letters; no capital letters are allowed."

    def violation(self, response: str) -> str | None:
        match = re.search(r"[A-Z]", response)
        if not match:
            return None
        snippet = excerpt(response, match.start(), match.end())
        return f'The response uses capital letters ("{snippet}") although the instruction asks for all lowercase letters.'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        return spans_of(r"[A-Z]+", response)


@dataclass(frozen=True)
class AllUppercase(Constraint):
    kind, group = "all_uppercase", "case"

    def describe(self) -> str:
        return "Your entire response must be in English capital letters only."

    def violation(self, response: str) -> str | None:
        match = re.search(r"[a-z]", response)
        if not match:
            return None
        snippet = excerpt(response, match.start(), match.end())
        return f'The response uses lowercase letters ("{snippet}") although the instruction asks for capital letters only.'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        return spans_of(r"[a-z]+", response)


@dataclass(frozen=True)
class CapitalWordLimit(Constraint):
    kind, group = "capital_word_limit", "case"
    limit: int = 2

    def describe(self) -> str:
        return f"Use at most {self.limit} words written entirely in capital letters."

    def violation(self, response: str) -> str | None:
        capitals = [w for w in WORD.findall(response) if len(w) > 1 and w.isupper()]
        if len(capitals) <= self.limit:
            return None
        shown = ", ".join(f'"{w}"' for w in capitals[:4])
        return f"The response has {len(capitals)} all-capital words ({shown}), more than the allowed {self.limit}."

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The all-capital words past the limit."""
        capitals = [m.span() for m in WORD.finditer(response)
                    if len(m[0]) > 1 and m[0].isupper()]  # fmt: skip
        return merge_spans(capitals[self.limit :])

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.randint(1, 3))


@dataclass(frozen=True)
class NoCommas(Constraint):
    kind, group = "no_commas", "punctuation"

    def describe(self) -> str:
        return "Do not use any commas in your response."

    def violation(self, response: str) -> str | None:
        index = response.find(",")
        if index < 0:
            return None
        snippet = excerpt(response, index, index + 1, margin=4)
        return f'The response uses commas ("{snippet}") although the instruction forbids commas.'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        return spans_of(",", response)


@dataclass(frozen=True)
class NoExclamation(Constraint):
    kind, group = "no_exclamation", "punctuation"

    def describe(self) -> str:
        return "Do not use any exclamation marks."

    def violation(self, response: str) -> str | None:
        index = response.find("!")
        if index < 0:
            return None
        snippet = excerpt(response, index, index + 1)
        return f'The response uses an exclamation mark ("{snippet}") although the instruction forbids them.'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        return spans_of("!", response)


@dataclass(frozen=True)
class BulletPoints(Constraint):
    kind, group = "bullet_points", "structure"
    bullet_lines: ClassVar[tuple[str, ...]] = (r"^\s*[*-]\s+\S.*$",)  # patterns of a bullet line
    n: int = 3

    def describe(self) -> str:
        return f"Your answer must contain exactly {self.n} bullet points, using markdown bullets such as:\n* This is a point."

    def bullets(self, response: str) -> list[Span]:
        """The bullet lines, in order."""
        return sorted(m.span() for pattern in self.bullet_lines
                      for m in re.finditer(pattern, response, re.MULTILINE))  # fmt: skip

    def violation(self, response: str) -> str | None:
        found = len(self.bullets(response))
        if found == self.n:
            return None
        return (
            f"The response has {found} bullet points but the instruction asks for exactly {self.n}."
        )

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The bullet lines past the n-th (too few bullets is an absence)."""
        return merge_spans((start + len(response[start:end]) - len(response[start:end].lstrip()),
                            end) for start, end in self.bullets(response)[self.n :])  # fmt: skip

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.randint(2, 5))


@dataclass(frozen=True)
class Paragraphs(Constraint):
    kind, group = "paragraphs", "structure"
    n: int = 3

    def describe(self) -> str:
        return f"There should be exactly {self.n} paragraphs, separated from each other by the markdown divider ***."

    def violation(self, response: str) -> str | None:
        """IFEval's rule: a blank paragraph between two dividers breaks the count."""
        parts = re.split(r"\s?\*\*\*\s?", response)
        inner = parts[1:-1]
        found = sum(bool(p.strip()) for p in parts)
        if found == self.n and all(p.strip() for p in inner):
            return None
        if not all(p.strip() for p in inner):
            return "The response has an empty paragraph between two *** dividers."
        return f"The response has {found} paragraphs separated by *** but the instruction asks for exactly {self.n}."

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The *** dividers past the (n-1)-th (too few is an absence)."""
        return merge_spans(m.span() for m in list(re.finditer(r"\*\*\*", response))[self.n - 1 :])

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.randint(2, 4))


@dataclass(frozen=True)
class Sections(Constraint):
    kind, group = "sections", "structure"
    n: int = 2

    def describe(self) -> str:
        return f"Your response must have {self.n} sections. Mark the beginning of each section with SECTION X, such as: SECTION 1."

    def violation(self, response: str) -> str | None:
        found = len(re.findall(r"\bSECTION\s+\d+", response))
        if found == self.n:
            return None
        return f"The response marks {found} sections with SECTION X but the instruction asks for {self.n}."

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The SECTION markers past the n-th (too few is an absence)."""
        return merge_spans(
            m.span() for m in list(re.finditer(r"\bSECTION\s+\d+", response))[self.n :]
        )

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.randint(2, 4))


@dataclass(frozen=True)
class Highlights(Constraint):
    kind, group = "highlights", "markup"
    n: int = 2

    def describe(self) -> str:
        return f"Highlight at least {self.n} sections of your answer with markdown, i.e. *highlighted section*."

    def count(self, response: str) -> int:
        return len(re.findall(r"(?<!\*)\*[^\n*]+\*(?!\*)", response))

    def violation(self, response: str) -> str | None:
        found = self.count(response)
        if found >= self.n:
            return None
        return f"The response has {found} *highlighted* sections; the instruction asks for at least {self.n}."

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.randint(1, 3))


@dataclass(frozen=True)
class Title(Constraint):
    kind, group = "title", "markup"

    def describe(self) -> str:
        return "Your answer must contain a title, wrapped in double angular brackets, such as <<poem of joy>>."

    def has_title(self, response: str) -> bool:
        return re.search(r"<<[^<>\n]+>>", response) is not None

    def violation(self, response: str) -> str | None:
        if self.has_title(response):
            return None
        return (
            "The response has no title wrapped in double angular brackets, such as <<poem of joy>>."
        )


@dataclass(frozen=True)
class Placeholders(Constraint):
    kind, group = "placeholders", "markup"
    placeholder: ClassVar[str] = r"\[[^\[\]\n]+\]"
    n: int = 2

    def describe(self) -> str:
        return f"The response must contain at least {self.n} placeholders in square brackets, such as [address]."

    def violation(self, response: str) -> str | None:
        found = len(re.findall(self.placeholder, response))
        if found >= self.n:
            return None
        return f"The response has {found} placeholders in square brackets; the instruction asks for at least {self.n}."

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.randint(1, 3))


@dataclass(frozen=True)
class MaxWords(Constraint):
    kind, group = "max_words", "length"
    limit: int = 100

    def describe(self) -> str:
        return f"Answer with at most {self.limit} words."

    def violation(self, response: str) -> str | None:
        n = len(IFEVAL_WORD.findall(response))
        if n <= self.limit:
            return None
        return f"The response has {n} words, more than the limit of {self.limit}."

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """From the first word past the limit to the end."""
        words = list(IFEVAL_WORD.finditer(response))
        return tail_from(response, words[self.limit].start()) if len(words) > self.limit else ()

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.choice((30, 50, 80, 120)))


@dataclass(frozen=True)
class MinWords(Constraint):
    kind, group = "min_words", "length"
    minimum: int = 100

    def describe(self) -> str:
        return f"Answer with at least {self.minimum} words."

    def violation(self, response: str) -> str | None:
        n = len(IFEVAL_WORD.findall(response))
        if n >= self.minimum:
            return None
        return f"The response has {n} words, fewer than the required {self.minimum}."

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.choice((40, 80, 150)))


@dataclass(frozen=True)
class MaxSentences(Constraint):
    kind, group = "max_sentences", "length"
    limit: int = 3

    def describe(self) -> str:
        return f"Your response should contain at most {self.limit} sentences."

    def violation(self, response: str) -> str | None:
        n = len(SENTENCE_END.findall(response.strip() + " "))
        if n <= self.limit:
            return None
        return f"The response has {n} sentences, more than the limit of {self.limit}."

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """From the first sentence past the limit to the end."""
        ends = [m.end() for m in SENTENCE_END.finditer(response.strip() + " ")]
        if len(ends) <= self.limit:
            return ()
        offset = len(response) - len(response.lstrip())  # ends are of the stripped text
        start = offset + ends[self.limit - 1]
        start += len(response[start:]) - len(response[start:].lstrip())
        return tail_from(response, start)

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.randint(2, 5))


@dataclass(frozen=True)
class IncludeKeywords(Constraint):
    kind, group = "include_keywords", "lexical"
    whole_words: ClassVar[bool] = True  # False: anywhere, even inside a longer word
    keywords: tuple[str, ...] = ("river",)

    def describe(self) -> str:
        return (
            "Include the keywords "
            + ", ".join(f'"{k}"' for k in self.keywords)
            + " in the response."
        )

    def violation(self, response: str) -> str | None:
        missing = [
            k for k in self.keywords
            if not re.search(word_pattern(k, self.whole_words), response, re.I)
        ]  # fmt: skip
        if not missing:
            return None
        shown = ", ".join(f'"{k}"' for k in missing)
        noun = "keyword" if len(missing) == 1 else "keywords"
        return f"The response does not mention the {noun} {shown} that the instruction requires."

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(tuple(rng.sample(KEYWORDS, rng.randint(1, 2))))


@dataclass(frozen=True)
class ForbiddenWords(Constraint):
    kind, group = "forbidden_words", "lexical"
    words: tuple[str, ...] = ("very",)

    def describe(self) -> str:
        return (
            "Do not include the words "
            + ", ".join(f'"{w}"' for w in self.words)
            + " in the response."
        )

    def violation(self, response: str) -> str | None:
        for word in self.words:
            match = re.search(rf"\b{re.escape(word)}\b", response, re.I)
            if match:
                snippet = excerpt(response, match.start(), match.end())
                return f'The response uses the forbidden word "{word}" ("{snippet}").'
        return None

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """Every occurrence of every forbidden word."""
        return merge_spans(span for word in self.words
                           for span in spans_of(rf"\b{re.escape(word)}\b", response, re.I))  # fmt: skip

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(tuple(rng.sample(FILLER_WORDS, 2)))


@dataclass(frozen=True)
class KeywordFrequency(Constraint):
    kind, group = "keyword_frequency", "lexical"
    whole_words: ClassVar[bool] = True  # False: anywhere, even inside a longer word
    word: str = "light"
    n: int = 3
    relation: Relation = "at least"

    def describe(self) -> str:
        return f'The word "{self.word}" should appear {self.relation} {self.n} times.'

    def occurrences(self, response: str) -> list[Span]:
        return [
            m.span() for m in re.finditer(word_pattern(self.word, self.whole_words), response, re.I)
        ]

    def violation(self, response: str) -> str | None:
        found = len(self.occurrences(response))
        if meets(found, self.relation, self.n):
            return None
        return f'The word "{self.word}" appears {found} times; the instruction asks for {self.relation} {self.n}.'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """Under "less than": the occurrences from the n-th on (too few is an absence)."""
        if self.relation == "at least":
            return ()
        return merge_spans(self.occurrences(response)[self.n - 1 :])

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.choice(KEYWORDS), rng.randint(2, 4))


@dataclass(frozen=True)
class LetterFrequency(Constraint):
    kind, group = "letter_frequency", "lexical"
    letter: str = "z"  # lowercase: both cases count
    n: int = 3
    relation: Relation = "at least"

    def describe(self) -> str:
        return f'The letter "{self.letter}" should appear {self.relation} {self.n} times in your response.'

    def violation(self, response: str) -> str | None:
        found = response.lower().count(self.letter)
        if meets(found, self.relation, self.n):
            return None
        return f'The letter "{self.letter}" appears {found} times; the instruction asks for {self.relation} {self.n}.'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """Under "less than": the letter from its n-th occurrence on (too few is an absence)."""
        if self.relation == "at least":
            return ()
        found = [(i, i + 1) for i, c in enumerate(response) if self.letter in c.lower()]
        return merge_spans(found[self.n - 1 :])

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.choice("zqxjk"), rng.randint(2, 5))


@dataclass(frozen=True)
class EndWith(Constraint):
    kind, group = "end_with", "shape"
    phrase: str = ENDINGS[0]

    def describe(self) -> str:
        return f'Finish your response with this exact phrase: "{self.phrase}". No other words should follow it.'

    def ends_with_phrase(self, response: str) -> bool:
        return response.strip().endswith(self.phrase)

    def violation(self, response: str) -> str | None:
        if self.ends_with_phrase(response):
            return None
        tail = " ".join(response.strip()[-40:].split())
        return f'The response ends with "...{tail}" instead of the required phrase "{self.phrase}".'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The last sentence: where the required phrase should have been."""
        return last_sentence(response)

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.choice(ENDINGS))


@dataclass(frozen=True)
class StartWith(Constraint):
    kind, group = "start_with", "shape"
    word: str = "Certainly"

    def describe(self) -> str:
        return f'Start your response with the word "{self.word}".'

    def violation(self, response: str) -> str | None:
        words = WORD.findall(response)
        if words and words[0] == self.word:
            return None
        first = words[0] if words else ""
        return f'The response starts with "{first}" instead of the required word "{self.word}".'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The first word, written where the required one should have been."""
        first = WORD.search(response)
        return (first.span(),) if first else ()

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.choice(("Certainly", "Indeed", "Well", "Today")))


@dataclass(frozen=True)
class Postscript(Constraint):
    kind, group = "postscript", "shape"
    marker: str = "P.S."

    def describe(self) -> str:
        return f"At the end of your response, please explicitly add a postscript starting with {self.marker}"

    def has_postscript(self, response: str) -> bool:
        return re.search(rf"^\s*{re.escape(self.marker)}", response, re.MULTILINE) is not None

    def violation(self, response: str) -> str | None:
        if self.has_postscript(response):
            return None
        return f'The response has no postscript starting with "{self.marker}".'

    @classmethod
    def sample(cls, rng: random.Random) -> Constraint:
        return cls(rng.choice(("P.S.", "P.P.S")))


@dataclass(frozen=True)
class Quotation(Constraint):
    kind, group = "quotation", "shape"

    def describe(self) -> str:
        return "Wrap your entire response with double quotation marks."

    def violation(self, response: str) -> str | None:
        text = response.strip()
        if len(text) > 1 and text[0] == '"' and text[-1] == '"':
            return None
        return "The response is not wrapped in double quotation marks from its first to its last character."


@dataclass(frozen=True)
class ValidJson(Constraint):
    kind, group = "valid_json", "json"

    def describe(self) -> str:
        return "Your entire output should be wrapped in JSON format. You can use markdown ticks such as ```."

    def payload(self, response: str) -> str:
        """The text that must parse: the response without its markdown fence."""
        return re.sub(r"^\s*```(?:json)?\s*|\s*```\s*$", "", response.strip(), flags=re.I)

    def violation(self, response: str) -> str | None:
        text = self.payload(response)
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return f"The response is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}."
        return None

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The character where parsing fails (the end, for JSON cut short)."""
        text = self.payload(response)
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            if not text:
                return ()
            where = response.find(text) + min(error.pos, len(text) - 1)
            return ((where, where + 1),)
        return ()


@dataclass(frozen=True)
class RepeatRequest(Constraint):
    kind, group = "repeat_request", "shape"
    request: str = ""

    def describe(self) -> str:
        return "First repeat the request word for word without change, then give your answer (do not say anything before repeating the request)."

    def violation(self, response: str) -> str | None:
        if response.strip().lower().startswith(self.request.strip().lower()):
            return None
        start = " ".join(response.strip()[:40].split())
        return f'The response does not start by repeating the request word for word; it starts with "{start}...".'

    def faulty_spans(self, response: str) -> tuple[Span, ...]:
        """The word where the response departs from the request (case aside)."""
        offset = len(response) - len(response.lstrip())
        text, request = response.strip(), self.request.strip().lower()
        same = next((i for i, (a, b) in enumerate(zip(text.lower(), request, strict=False)) if a != b),
                    min(len(text), len(request)))  # fmt: skip
        word = re.compile(r"\S+").search(text, max(0, text.rfind(" ", 0, same) + 1))
        return ((offset + word.start(), offset + word.end()),) if word else ()


CONSTRAINT_TYPES: tuple[type[Constraint], ...] = (
    AllLowercase, AllUppercase, CapitalWordLimit, NoCommas, NoExclamation, BulletPoints,
    Paragraphs, Sections, Highlights, Title, Placeholders, MaxWords, MinWords, MaxSentences,
    IncludeKeywords, ForbiddenWords, KeywordFrequency, LetterFrequency, EndWith, StartWith,
    Postscript, Quotation, ValidJson, RepeatRequest,
)  # fmt: skip
