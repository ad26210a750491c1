"""Where cutloop keeps its files: $CUTLOOP_HOME, else the user's XDG cache directory."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir


def cutloop_home() -> Path:
    home = Path(os.environ.get("CUTLOOP_HOME") or user_cache_dir("cutloop"))
    home.mkdir(parents=True, exist_ok=True)
    return home
