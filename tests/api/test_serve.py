"""The API server as `cutloop serve` starts it: light (no torch or transformers in the
process), and up on a machine where something else holds Ray's default port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "transformers", "vllm")


def test_the_app_imports_no_torch_transformers_or_vllm():
    code = (
        "import sys; import api.app, api.cli; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == [], f"importing api.app imported {child.stdout.strip()}"
