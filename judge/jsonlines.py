"""Append-only JSON-lines files (the judge's cache and spending, the trainer's step log)
that a kill may interrupt mid-append: a torn last line is cut off when the file is read,
so no restart fails on it and the next append starts on a line of its own."""

from __future__ import annotations

import json
import os
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
