"""What a paid endpoint has cost so far: calls made and tokens used. With a file, every
call and its tokens are appended as they happen, so a budget (max_calls,
max_total_tokens) holds over a campaign's life, across restarts, not per process."""

from __future__ import annotations

import json
from pathlib import Path


class Spending:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.calls = 0
        self.total_tokens = 0
        if self.path and self.path.exists():
            for line in self.path.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.calls += entry["calls"]
                    self.total_tokens += entry["tokens"]

    def add(self, calls: int = 0, tokens: int = 0) -> None:
        """Count a call when it is made (a call cut short by a crash was still paid),
        its tokens when they are known."""
        self.calls += calls
        self.total_tokens += tokens
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as handle:
                handle.write(json.dumps({"calls": calls, "tokens": tokens}) + "\n")
