"""Run in a process of its own (the test session's Ray is already joined): a tiny
campaign (argv[2]: JSON of setting changes) on the Ray cluster at argv[1], launched from
this process like `cutloop run`; prints its outcome as one JSON line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from orchestrator.campaign_run import run_campaign
from tests.orchestrator.campaigns import tiny_campaign


def main() -> None:
    os.environ["RAY_AUTH_MODE"] = "disabled"
    changes = json.loads(sys.argv[2])
    config = tiny_campaign(changes.pop("name"), Path(changes.pop("policy")), **changes)
    outcome = run_campaign(config.model_copy(update={"ray_address": sys.argv[1]}))
    print(json.dumps({"status": outcome.status.value, "error": outcome.error}))


if __name__ == "__main__":
    main()
