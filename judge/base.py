"""What every judge takes and returns."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from cut.examples import Polarity
from cut.spans import Span


class JudgmentStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"


@dataclass(frozen=True)
class JudgeRequest:
    instruction: str
    response: str


@dataclass(frozen=True)
class JudgmentResult:
    """A judgment (status ok: text and polarity set) or a failed call (error set).
    `spans`: the characters of the response the judgment faults (cut/spans.py)."""

    judge_name: str
    status: JudgmentStatus
    text: str | None = None
    polarity: Polarity | None = None
    spans: tuple[Span, ...] = ()
    error: str | None = None
    judge_model: str | None = None
    latency_s: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False

    @classmethod
    def ok(cls, judge_name: str, text: str, polarity: Polarity, **extra) -> JudgmentResult:
        return cls(judge_name, JudgmentStatus.OK, text=text, polarity=polarity, **extra)

    @classmethod
    def failed(cls, judge_name: str, error: str, **extra) -> JudgmentResult:
        return cls(judge_name, JudgmentStatus.FAILED, error=error, **extra)


class Judge(Protocol):
    name: str

    def judge(self, requests: list[JudgeRequest]) -> list[JudgmentResult]:
        """One result per request, in order; failures are results, not exceptions."""
        ...
