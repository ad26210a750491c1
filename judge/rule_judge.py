"""Rule judges: verifiable instructions checked by code, no model and no network."""

from __future__ import annotations

from collections.abc import Iterable

from cut.examples import Polarity
from cut.spans import Span, merge_spans
from judge.base import JudgeRequest, JudgmentResult
from judge.instructions import VerifiableInstruction, builtin_by_text
from judge.rules import Constraint

PERFECT = "Perfect. The response meets every constraint of the instruction."


class RuleJudge:
    """Positive when every constraint holds; otherwise the violations, one sentence each,
    with the spans of the answer they fault. An instruction whose constraints are
    unknown is a failed call, not a judgment."""

    def __init__(
        self, instructions: Iterable[VerifiableInstruction] | None = None, name: str = "rules"
    ) -> None:
        self.name = name
        self.by_text = (
            builtin_by_text() if instructions is None else {i.text: i for i in instructions}
        )

    def violated(self, request: JudgeRequest) -> list[tuple[Constraint, str]] | None:
        """(constraint, violation) for each constraint the response breaks; None when the
        instruction's constraints are unknown."""
        instruction = self.by_text.get(request.instruction)
        if instruction is None:
            return None
        found = ((c, c.violation(request.response)) for c in instruction.constraints)
        return [(c, v) for c, v in found if v is not None]

    def violations(self, request: JudgeRequest) -> list[str] | None:
        violated = self.violated(request)
        return None if violated is None else [v for _, v in violated]

    @staticmethod
    def spans(violated: list[tuple[Constraint, str]], response: str) -> tuple[Span, ...]:
        return merge_spans(s for c, _ in violated for s in c.faulty_spans(response))

    def judge(self, requests: list[JudgeRequest], on_result=None) -> list[JudgmentResult]:
        results = []
        for request in requests:
            violated = self.violated(request)
            if violated is None:
                result = JudgmentResult.failed(
                    self.name, "no constraints known for this instruction"
                )
            elif violated:
                text = " ".join(v for _, v in violated)
                spans = self.spans(violated, request.response)
                result = JudgmentResult.ok(self.name, text, Polarity.NEGATIVE, spans=spans)
            else:
                result = JudgmentResult.ok(self.name, PERFECT, Polarity.POSITIVE)
            if on_result is not None:
                on_result(result)
            results.append(result)
        return results
