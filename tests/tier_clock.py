"""What each tier of the suite costs: the seconds of every test's phases (setup, call,
teardown) summed under the costliest tier it belongs to, so the tiers add up to the
whole. Every run prints them at its end; bench/suite.py prints them as JSON."""

from __future__ import annotations

from collections import defaultdict

import pytest

UNIT = "unit"


class TierClock:
    def __init__(self, costliest_first: list[str]) -> None:
        self.order = [*costliest_first, UNIT]
        self.tier_of: dict[str, str] = {}
        self.seconds: dict[str, float] = defaultdict(float)
        self.failed: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Reports carry their test's markers, from pytest-xdist's workers too."""
        tier = next((t for t in self.order if t in report.keywords), UNIT)
        self.tier_of[report.nodeid] = tier
        self.seconds[report.nodeid] += report.duration
        if report.failed:
            self.failed.append(report.nodeid)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per tier that ran a test: its tests and their seconds."""
        tiers: dict[str, dict[str, float]] = {}
        for tier in self.order:
            ran = [s for node, s in self.seconds.items() if self.tier_of.get(node) == tier]
            if ran:
                tiers[tier] = {"tests": len(ran), "seconds": round(sum(ran), 1)}
        return tiers

    def pytest_terminal_summary(self, terminalreporter) -> None:
        tiers = self.summary()
        if tiers:
            terminalreporter.write_sep("=", "seconds per tier")
            for tier, cost in tiers.items():
                terminalreporter.write_line(
                    f"{tier:>9}: {cost['tests']:4d} tests {cost['seconds']:8.1f} s"
                )
