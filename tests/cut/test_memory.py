"""Peak memory is measured in a child process per case (the training memory test, the
benches): the child must report its own peak, not its parent's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_child_process_reports_its_own_peak_not_its_parents():
    ballast = b"\1" * (1 << 30)  # written, so every page is resident
    code = "from cut.memory import peak_rss_bytes; print(peak_rss_bytes())"
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    child_peak = int(child.stdout)
    assert 0 < child_peak < len(ballast) / 2, f"child peak {child_peak / 2**30:.2f} GiB"
