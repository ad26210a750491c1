"""The test suite's cost per tier: runs pytest once (whatever arguments follow, e.g. a
marker expression) and prints one JSON line with the wall time, and per tier the tests
and the seconds they took (setup, call and teardown). A test counts in the costliest
tier it belongs to, so the tiers add up to the whole: e2e, cluster, browser, model,
postgres, ray, then unit (none of them). The tiers come from tests/conftest.py, so a
test added later is counted where it lands.

    .venv/bin/python bench/suite.py            # the whole suite, as `make test` runs it
    .venv/bin/python bench/suite.py --unit     # the unit tier, as `make check` runs it
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TIERS  # noqa: E402  (the repository's root on the path first)
from tests.tier_clock import TierClock  # noqa: E402


def main(args: list[str]) -> int:
    clock = TierClock(list(TIERS))
    started = time.perf_counter()
    exit_code = pytest.main(["-q", "-p", "no:cacheprovider", *args], plugins=[clock])
    wall = time.perf_counter() - started
    slowest = sorted(clock.seconds.items(), key=lambda kv: kv[1], reverse=True)[:5]
    print(json.dumps({
        "wall_s": round(wall, 1),
        "exit_code": int(exit_code),
        "failed": clock.failed,
        "tiers": clock.summary(),
        "slowest": [{"test": node, "seconds": round(s, 1)} for node, s in slowest],
    }))  # fmt: skip
    return int(exit_code)


if __name__ == "__main__":
    os.chdir(ROOT)  # pytest's rootdir and testpaths
    sys.exit(main(sys.argv[1:]))
