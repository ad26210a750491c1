"""Append-only JSON-lines files (the judge's cache and spending, the trainer's step log)
that a kill may interrupt mid-append: a torn last line is cut off when the file is read,
so no restart fails on it and the next append starts on a line of its own."""

from __future__ import annotations

import json
import os
import weakref
from pathlib import Path
from typing import Any


def read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The file's complete entries ([] when there is no file)."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # the entry a kill interrupted was never whole: drop it
        os.truncate(path, end)
    return [json.loads(line) for line in data[:end].decode().splitlines() if line.strip()]


def append_json_line(path: Path, entry: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")


class JsonLinesAppender:
    """Appends to one file through a descriptor kept open (O_APPEND), each entry one
    write(2): in the kernel when `append` returns, so a killed process loses none, at a
    fraction of the cost of opening the file per entry (a judge appends up to three lines
    per paid call, hundreds of calls a second). `sync` (at the end of a batch) makes the
    entries survive a power loss too; until then such a loss may take the batch's last
    entries. Without a path (a cache or budget kept in memory) both do nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._fd: int | None = None

    def append(self, entry: dict[str, Any]) -> None:
        if self.path is None:
            return
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            weakref.finalize(self, os.close, self._fd)
        line = memoryview((json.dumps(entry, ensure_ascii=False) + "\n").encode())
        while line:  # a regular file writes whole lines but for a full disk
            line = line[os.write(self._fd, line) :]

    def sync(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
