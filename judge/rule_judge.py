"""Rule judges: verifiable instructions checked by code, no model and no network."""

from __future__ import annotations

from collections.abc import Iterable

from cut.examples import Polarity
from judge.base import JudgeRequest, JudgmentResult
from judge.instructions import VerifiableInstruction, builtin_by_text

PERFECT = "Perfect. The response meets every constraint of the instruction."


class RuleJudge:
    """Positive when every constraint holds; otherwise the violations, one sentence each.
    An instruction whose constraints are unknown is a failed call, not a judgment."""

    def __init__(
        self, instructions: Iterable[VerifiableInstruction] | None = None, name: str = "rules"
    ) -> None:
        self.name = name
        self.by_text = (
            builtin_by_text() if instructions is None else {i.text: i for i in instructions}
        )

    def violations(self, request: JudgeRequest) -> list[str] | None:
        instruction = self.by_text.get(request.instruction)
        if instruction is None:
            return None
        found = (c.violation(request.response) for c in instruction.constraints)
        return [v for v in found if v is not None]

    def judge(self, requests: list[JudgeRequest], on_result=None) -> list[JudgmentResult]:
        results = []
        for request in requests:
            violations = self.violations(request)
            if violations is None:
                result = JudgmentResult.failed(
                    self.name, "no constraints known for this instruction"
                )
            elif violations:
                result = JudgmentResult.ok(self.name, " ".join(violations), Polarity.NEGATIVE)
            else:
                result = JudgmentResult.ok(self.name, PERFECT, Polarity.POSITIVE)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results
