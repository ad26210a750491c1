"""What a paid endpoint has cost so far: calls made and tokens used. With a file, every
call and its tokens are appended as they happen, so a budget (max_calls,
max_total_tokens) holds over a campaign's life, across restarts, not per process
(judge/jsonlines.py says what survives a kill and a power loss)."""

from __future__ import annotations

from pathlib import Path

from judge.jsonlines import JsonLinesAppender, read_json_lines


class Spending:
    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._file = JsonLinesAppender(self.path)
        self.calls = 0
        self.total_tokens = 0
        for entry in read_json_lines(self.path) if self.path else []:
            self.calls += entry["calls"]
            self.total_tokens += entry["tokens"]

    def add(self, calls: int = 0, tokens: int = 0) -> None:
        """Count a call when it is made (a call cut short by a crash was still paid),
        its tokens when they are known."""
        self.calls += calls
        self.total_tokens += tokens
        self._file.append({"calls": calls, "tokens": tokens})

    def sync(self) -> None:
        """On disk, past a power loss (the end of a batch of calls)."""
        self._file.sync()
