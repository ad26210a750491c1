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
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import TIERS  # noqa: E402  (the repository's root on the path first)

COSTLIEST_FIRST = list(TIERS)


class TierClock:
    """A pytest plugin: the seconds of every test's phases, summed under its tier."""

    def __init__(self) -> None:
        self.tier_of: dict[str, str] = {}
        self.seconds: dict[str, float] = defaultdict(float)
        self.failed: list[str] = []

    @pytest.hookimpl(trylast=True)  # after conftest has marked the tiers
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            marked = {mark.name for mark in item.iter_markers()}
            self.tier_of[item.nodeid] = next((t for t in COSTLIEST_FIRST if t in marked), "unit")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[report.nodeid] += report.duration
        if report.failed:
            self.failed.append(report.nodeid)

    def summary(self) -> dict[str, dict[str, float]]:
        tiers: dict[str, dict[str, float]] = {}
        for tier in [*COSTLIEST_FIRST, "unit"]:
            ran = [s for node, s in self.seconds.items() if self.tier_of.get(node) == tier]
            tiers[tier] = {"tests": len(ran), "seconds": round(sum(ran), 1)}
        return tiers


def main(args: list[str]) -> int:
    clock = TierClock()
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
