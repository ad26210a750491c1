"""Where a demo round's time goes: wall time per stage, and the fraction of the round
spent outside the work itself (generation, judging, training, evaluation) — store
commits, stage bookkeeping, checkpoint hashing, swaps, actor calls. Runs the CPU demo
campaign's settings for round 0 (evaluation only) and one full round, on a fresh SQLite
database, and prints one JSON line. Target: overhead_fraction <= 0.05.

    .venv/bin/python bench/round_overhead.py [--config campaigns/demo-cpu.yaml]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.campaign_run import run_campaign
from orchestrator.config import load_campaign
from store.home import cutloop_home
from store.models import Stage

WORK = (Stage.GENERATE, Stage.JUDGE, Stage.TRAIN, Stage.EVALUATE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="campaigns/demo-cpu.yaml")
    args = parser.parse_args()

    base = load_campaign(args.config)
    name = f"bench-{uuid.uuid4().hex[:8]}"
    config = base.model_copy(update={"name": name, "rounds": 1})
    database = Path(tempfile.mkdtemp()) / "bench.db"
    os.environ["CUTLOOP_DATABASE_URL"] = f"sqlite:///{database}"
    try:
        outcome = run_campaign(config)
    finally:
        shutil.rmtree(cutloop_home() / "campaigns" / name, ignore_errors=True)
        shutil.rmtree(database.parent, ignore_errors=True)
    if outcome.error:
        raise SystemExit(outcome.error)
    times = outcome.times[1]
    work = sum(times.work.get(stage, 0.0) for stage in WORK)
    print(
        json.dumps(
            {
                "config": args.config,
                "round_wall_s": round(times.round_wall, 2),
                "stage_wall_s": {str(k): round(v, 3) for k, v in times.wall.items()},
                "stage_work_s": {str(k): round(v, 3) for k, v in times.work.items()},
                "round0_evaluate_wall_s": round(outcome.times[0].round_wall, 2),
                "overhead_fraction": round(1 - work / times.round_wall, 4),
            }
        )
    )


if __name__ == "__main__":
    main()
