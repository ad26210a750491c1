"""A judge worker: one judge (its client, budget and cache) held for a campaign's life in
its own Ray actor, so slow or blocking judges never stall the orchestrator."""

from __future__ import annotations

from collections.abc import Callable

from judge.base import Judge, JudgeRequest, JudgmentResult


class JudgeWorker:
    def __init__(self, build: Callable[[], Judge]) -> None:
        self._judge = build()

    def name(self) -> str:
        return self._judge.name

    def judge(self, requests: list[JudgeRequest]) -> list[JudgmentResult]:
        return self._judge.judge(requests)
