"""A judgment cache keyed by sha256 of (template, model, instruction, response).

Append-only JSON lines, so a resumed round finds what it already paid for even after a
crash mid-batch; only ok judgments are cached (a failed call may be retried).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from cut.examples import Polarity
from judge.base import JudgmentResult


def cache_key(template: str, model: str, instruction: str, response: str) -> str:
    payload = json.dumps([template, model, instruction, response], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


class JudgmentCache:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._entries: dict[str, dict] = {}
        self._lock = threading.Lock()
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self._entries[entry["key"]] = entry

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, judge_name: str) -> JudgmentResult | None:
        entry = self._entries.get(key)
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
            "key": key,
            "text": result.text,
            "polarity": result.polarity,
            "model": result.judge_model,
            "tokens_in": result.tokens_in,
            "tokens_out": result.tokens_out,
        }
        with self._lock:
            self._entries[key] = entry
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a") as handle:
                    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
