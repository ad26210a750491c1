"""Named points in the round loop (and the trainer) where a test can stop a real run dead.

With CUTLOOP_FAILPOINT=<name> set, the process that reaches `failpoint(name)` writes the
name to $CUTLOOP_FAILPOINT_MARKER and then waits forever, so the test knows exactly where
the run is before it kills it with SIGKILL. Unset (always, outside tests), a failpoint
does nothing.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

FAILPOINT_ENV = "CUTLOOP_FAILPOINT"
MARKER_ENV = "CUTLOOP_FAILPOINT_MARKER"


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) != name:
        return
    marker = Path(os.environ[MARKER_ENV])
    marker.with_suffix(".tmp").write_text(name)
    marker.with_suffix(".tmp").rename(marker)  # appears whole
    threading.Event().wait()
