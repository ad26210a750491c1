"""Judgments pages of done rounds, kept as the bytes sent.

A done round's judgments no longer change (store/summaries.py's FinishedRounds says
why), so a page of one is the same answer every time it is asked for: dashboards paging
through a finished round cost one lookup of the round, not a query, 20-100 validated
models and their JSON. A page is kept under the round's finish time, so a round done
again is read afresh; the least recently asked pages go first beyond `budget_bytes`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable

BUDGET_BYTES = 32 * 2**20


class DonePages:
    def __init__(self, budget_bytes: int = BUDGET_BYTES) -> None:
        self.budget_bytes = budget_bytes
        self._pages: OrderedDict[Hashable, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # the store's threads share it

    def get(self, key: Hashable) -> bytes | None:
        with self._lock:
            body = self._pages.get(key)
            if body is not None:
                self._pages.move_to_end(key)
            return body

    def put(self, key: Hashable, body: bytes) -> None:
        with self._lock:
            if key in self._pages or len(body) > self.budget_bytes:
                return
            self._pages[key] = body
            self._bytes += len(body)
            while self._bytes > self.budget_bytes:
                _, dropped = self._pages.popitem(last=False)
                self._bytes -= len(dropped)
