"""Pairwise annotators for evaluation: which of two outputs is better for an instruction.

Preferences follow AlpacaEval: 1.0 = output_1 (the reference) wins, 2.0 = output_2 wins,
1.5 = a draw; None with an error when the annotator could not decide (a failed call).
AlpacaEval's own annotators are in judge/alpaca_eval_annotator.py.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from judge.base import JudgeRequest
from judge.instructions import VerifiableInstruction
from judge.rule_judge import RuleJudge


@dataclass(frozen=True)
class PairwiseItem:
    instruction: str
    output_1: str  # the reference
    output_2: str  # the policy's output


@dataclass(frozen=True)
class PairwiseResult:
    preference: float | None
    error: str | None = None


class RulePairwiseAnnotator:
    """The output meeting more of the instruction's constraints wins; equal is a draw."""

    name = "rules"
    version = "cutloop rules: constraints met"

    def __init__(self, instructions: Iterable[VerifiableInstruction] | None = None) -> None:
        self._judge = RuleJudge(instructions)

    def annotate(self, items: list[PairwiseItem]) -> list[PairwiseResult]:
        results = []
        for item in items:
            broken_1 = self._judge.violations(JudgeRequest(item.instruction, item.output_1))
            broken_2 = self._judge.violations(JudgeRequest(item.instruction, item.output_2))
            if broken_1 is None or broken_2 is None:
                results.append(PairwiseResult(None, "no constraints known for this instruction"))
            elif len(broken_1) == len(broken_2):
                results.append(PairwiseResult(1.5))
            else:
                results.append(PairwiseResult(1.0 if len(broken_1) < len(broken_2) else 2.0))
        return results
