"""The kept pages of done rounds stay within their budget, the least recently asked
going first."""

from __future__ import annotations

from api.done_pages import DonePages


def test_pages_beyond_the_budget_go_least_recently_asked_first():
    pages = DonePages(budget_bytes=25)
    pages.put("a", b"a" * 10)
    pages.put("b", b"b" * 10)
    assert pages.get("a") == b"a" * 10  # now the most recently asked
    pages.put("c", b"c" * 10)
    assert (pages.get("a"), pages.get("b"), pages.get("c")) == (b"a" * 10, None, b"c" * 10)
    pages.put("d", b"d" * 30)  # larger than the whole budget: not kept, nothing dropped
    assert [pages.get(k) for k in "acd"] == [b"a" * 10, b"c" * 10, None]
