"""IFEval's four accuracies for verifiable instructions, computed as Google's IFEval does
(Zhou et al. 2023, google-research `instruction_following_eval/evaluation_lib.py`).

Strict: a constraint is met when the response is not blank and the checker accepts it.
Loose: when the checker accepts any non-blank variant of the response that IFEval tries
(`loose_variants`): markdown `*` removed, the first and/or last line removed (a
"Sure! Here it is:" opener or a sign-off), and those combined, 8 in all.

Prompt-level accuracy is the share of instructions whose every constraint is met;
instruction-level accuracy pools the constraints of all instructions (an instruction
with two constraints weighs twice), both in percent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from judge.instructions import VerifiableInstruction


def loose_variants(response: str) -> list[str]:
    """The response, without its first line, its last line, or both; each also with every
    `*` removed: IFEval's 8 variants, in its order."""
    lines = response.split("\n")
    without_first = "\n".join(lines[1:]).strip()
    without_last = "\n".join(lines[:-1]).strip()
    without_both = "\n".join(lines[1:-1]).strip()
    return [
        response, response.replace("*", ""),
        without_first, without_last, without_both,
        without_first.replace("*", ""), without_last.replace("*", ""),
        without_both.replace("*", ""),
    ]  # fmt: skip


def constraint_results(
    instruction: VerifiableInstruction, response: str
) -> tuple[list[bool], list[bool]]:
    """Per constraint of `instruction`, in order: (met strictly, met loosely)."""
    variants = [v for v in loose_variants(response) if v.strip()]
    strict = [bool(response.strip()) and c.violation(response) is None
              for c in instruction.constraints]  # fmt: skip
    loose = [any(c.violation(v) is None for v in variants) for c in instruction.constraints]
    return strict, loose


@dataclass(frozen=True)
class ItemResult:
    """One answer's tally: how many constraints its instruction has, how many it meets."""

    constraints: int
    strict_met: int
    loose_met: int

    @classmethod
    def of(cls, instruction: VerifiableInstruction, response: str) -> ItemResult:
        strict, loose = constraint_results(instruction, response)
        return cls(len(instruction.constraints), sum(strict), sum(loose))


IFEVAL_ACCURACIES = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")


@dataclass(frozen=True)
class IFEvalScores:
    prompt_strict: float  # percent of instructions with every constraint met
    prompt_loose: float
    instruction_strict: float  # percent of all constraints met, pooled over instructions
    instruction_loose: float
    n: int  # instructions scored


def _percent(part: int, whole: int) -> float:
    # an instruction without constraints meets all of them, as all([]) does in IFEval
    return 100.0 if whole == 0 else 100 * part / whole


def ifeval_scores(items: Iterable[ItemResult]) -> IFEvalScores | None:
    """The four accuracies over `items`; None when there is none."""
    items = list(items)
    if not items:
        return None
    constraints = sum(i.constraints for i in items)
    return IFEvalScores(
        prompt_strict=_percent(sum(i.strict_met == i.constraints for i in items), len(items)),
        prompt_loose=_percent(sum(i.loose_met == i.constraints for i in items), len(items)),
        instruction_strict=_percent(sum(i.strict_met for i in items), constraints),
        instruction_loose=_percent(sum(i.loose_met for i in items), constraints),
        n=len(items),
    )
