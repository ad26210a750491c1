"""Append-only JSON-lines caches of paid calls, keyed by sha256 of what was asked: a
resumed round finds what it already paid for even after a crash mid-batch. Only
successful calls are cached (a failed call may be retried)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from cut.examples import Polarity
from judge.base import JudgmentResult
from judge.jsonlines import JsonLinesAppender, read_json_lines


def cache_key(*parts: str) -> str:
    payload = json.dumps(list(parts), ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class JsonLinesCache:
    """key -> entry (a JSON object); in memory when `path` is None."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._file = JsonLinesAppender(self.path)
        if self.path:
            self._entries = {entry["key"]: entry for entry in read_json_lines(self.path)}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        entry = {"key": key, **entry}
        with self._lock:
            self._entries[key] = entry
            self._file.append(entry)

    def sync(self) -> None:
        """On disk, past a power loss (the end of a batch of calls)."""
        self._file.sync()


class JudgmentCache:
    """Judgments keyed by sha256 of (template, model, instruction, response)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._lines = JsonLinesCache(path)

    def __len__(self) -> int:
        return len(self._lines)

    def sync(self) -> None:
        self._lines.sync()

    def get(self, key: str, judge_name: str) -> JudgmentResult | None:
        entry = self._lines.get(key)
        if entry is None:
            return None
        return JudgmentResult.ok(
            judge_name,
            entry["text"],
            Polarity(entry["polarity"]),
            judge_model=entry["model"],
            tokens_in=entry["tokens_in"],
            tokens_out=entry["tokens_out"],
            cached=True,
        )

    def put(self, key: str, result: JudgmentResult) -> None:
        entry = {
            "text": result.text,
            "polarity": result.polarity,
            "model": result.judge_model,
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
        }
        self._lines.put(key, entry)
