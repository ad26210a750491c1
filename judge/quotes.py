"""Spans from a model judge's quotes: the judge is asked to quote the faulty text
verbatim, and each quote found in the answer becomes a span (cut/spans.py).

A quote is text between double quotes, straight ("...") or curly (“...”). It is looked up
in the answer with any run of whitespace matching any other run (judges re-wrap lines),
and its first occurrence is taken; a quote the answer does not contain (a paraphrase, the
instruction's wording) is ignored, never an error.
"""

from __future__ import annotations

import re

from cut.spans import Span, merge_spans

QUOTED = re.compile(r'"([^"\n]+)"|“([^”\n]+)”')
ELLIPSIS = re.compile(r"^(?:\.\.\.|…)\s*|\s*(?:\.\.\.|…)$")  # "...the end", a quote's cut


def quotes(judgment: str) -> list[str]:
    """The quoted passages of a judgment, in order, without a leading or trailing ellipsis."""
    found = (ELLIPSIS.sub("", (a or b).strip()) for a, b in QUOTED.findall(judgment))
    return [q for q in found if q]


def find_quote(quote: str, response: str) -> Span | None:
    """Where `quote` first occurs in `response`, whitespace-tolerant; None if nowhere."""
    pattern = r"\s+".join(re.escape(word) for word in quote.split())
    match = re.search(pattern, response)
    return match.span() if match else None


def quoted_spans(judgment: str, response: str) -> tuple[Span, ...]:
    """The spans of the response that the judgment quotes."""
    found = (find_quote(q, response) for q in quotes(judgment))
    return merge_spans(span for span in found if span is not None)
