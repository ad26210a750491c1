"""Pairwise annotators for evaluation: which of two outputs is better for an instruction.

Preferences follow AlpacaEval: 1.0 = output_1 (the reference) wins, 2.0 = output_2 wins,
1.5 = a draw; None with an error when the annotator could not decide (a failed call).
"""

from __future__ import annotations

import ast
import asyncio
import importlib.util
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from judge.base import JudgeRequest
from judge.instructions import VerifiableInstruction
from judge.openai_client import ChatCaller, EndpointConfig
from judge.rule_judge import RuleJudge

ALPACA_EVAL_PROMPT = "evaluators_configs/alpaca_eval_gpt4/alpaca_eval.txt"
PLACEHOLDER = re.compile(r"\{(instruction|output_1|output_2)\}")
CHATML_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)\n?<\|im_end\|>", re.DOTALL)


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


def alpaca_eval_prompt() -> str:
    """AlpacaEval's GPT-4 ranking prompt, read from the installed alpaca_eval package
    (located without importing it: its import needs setuptools' pkg_resources)."""
    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("alpaca_eval is not installed; it carries the annotator prompts")
    return (Path(spec.submodule_search_locations[0]) / ALPACA_EVAL_PROMPT).read_text()


def chatml_messages(prompt: str) -> list[dict[str, str]]:
    return [
        {"role": role, "content": content.strip()} for role, content in CHATML_TURN.findall(prompt)
    ]


def parse_ranking(reply: str) -> float:
    """AlpacaEval's ranking reply -> preference; raises ValueError when unreadable."""
    try:
        ranking = ast.literal_eval(reply.strip().removeprefix("```python").strip("`\n "))
        rank = next(entry["rank"] for entry in ranking if entry["model"] == "model_1")
    except (ValueError, SyntaxError, TypeError, KeyError, StopIteration) as error:
        raise ValueError(f"unreadable ranking: {reply[:80]!r}") from error
    if rank not in (1, 2):
        raise ValueError(f"model_1 ranked {rank!r}")
    return 1.0 if rank == 1 else 2.0


class OpenAIPairwiseConfig(EndpointConfig):
    name: str = Field("alpaca_eval_gpt4", description="annotator name stored with each run")
    max_tokens: int = Field(100, ge=1)


class OpenAIPairwiseAnnotator:
    def __init__(self, config: OpenAIPairwiseConfig) -> None:
        self.config = config
        self.name = config.name
        self.caller = ChatCaller(config)
        self._prompt = alpaca_eval_prompt()

    def annotate(self, items: list[PairwiseItem]) -> list[PairwiseResult]:
        return asyncio.run(self._annotate(items))

    async def _annotate(self, items: list[PairwiseItem]) -> list[PairwiseResult]:
        async with self.caller:
            return list(await asyncio.gather(*(self._one(item) for item in items)))

    async def _one(self, item: PairwiseItem) -> PairwiseResult:
        values = {
            "instruction": item.instruction,
            "output_1": item.output_1,
            "output_2": item.output_2,
        }
        prompt = PLACEHOLDER.sub(lambda m: values[m[1]], self._prompt)  # one pass: no re-expansion
        reply = await self.caller.chat(chatml_messages(prompt))
        if reply.text is None:
            return PairwiseResult(None, reply.error)
        try:
            return PairwiseResult(parse_ranking(reply.text))
        except ValueError as error:
            return PairwiseResult(None, str(error))
