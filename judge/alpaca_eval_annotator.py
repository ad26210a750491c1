"""AlpacaEval's own pairwise annotators: an `alpaca_eval` annotator config (its prompt,
decoding settings, completion parser and output-order randomisation) run by alpaca_eval's
SinglePairwiseAnnotator, so preferences are those the leaderboard's annotator gives.
Only the transport is cutloop's (ChatCaller): any OpenAI-compatible base URL, bounded
concurrency, a budget, retries, a failed call kept as a failure, the API key kept out
of every message. Raw replies are cached by (annotator, model, prompt), so a resumed
evaluation pays for no annotation twice."""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import Field

from judge.cache import JsonLinesCache, cache_key
from judge.openai_client import ChatCaller, ChatReply, EndpointConfig
from judge.pairwise import PairwiseItem, PairwiseResult
from judge.spending import Spending

ANNOTATION_CACHE = "annotation-cache.jsonl"
ANNOTATION_SPENDING = "annotation-spending.jsonl"
# completion settings only alpaca_eval's own OpenAI client understands
CLIENT_ONLY = frozenset(
    {"num_procs", "requires_chatml", "is_strip", "price_per_token", "batch_size"}
)


@cache
def alpaca_eval() -> ModuleType:
    """The alpaca_eval package, imported without its side effect: its annotators module
    sets the root logger to INFO, which would make every program using it verbose."""
    root = logging.getLogger()
    level = root.level
    import alpaca_eval
    import alpaca_eval.annotators
    import alpaca_eval.metrics

    root.setLevel(level)
    return alpaca_eval


class AlpacaEvalEndpoint(EndpointConfig):
    model: str | None = Field(
        None, description="None: the annotator config's own model (gpt-4 for alpaca_eval_gpt4)"
    )


def annotator_config(name: str) -> dict[str, Any]:
    """The settings of alpaca_eval's annotator `name`, as shipped in the package."""
    package = alpaca_eval()
    path = package.constants.EVALUATORS_CONFIG_DIR / name / "configs.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown alpaca_eval annotator {name!r} (e.g. alpaca_eval_gpt4 for AlpacaEval 1.0, "
            "weighted_alpaca_eval_gpt4_turbo for 2.0)"
        )
    configs = package.utils.load_configs(path)
    if len(configs) != 1:
        raise ValueError(f"alpaca_eval annotator {name!r} is a pool of {len(configs)} annotators")
    (config,) = configs.values()
    if config.get("fn_completions") != "openai_completions":
        raise ValueError(
            f"alpaca_eval annotator {name!r} calls {config.get('fn_completions')}; cutloop "
            "runs annotators through OpenAI-compatible endpoints only"
        )
    return config


class AlpacaEvalAnnotator:
    def __init__(
        self,
        name: str,
        endpoint: AlpacaEvalEndpoint,
        cache_path: Path | None = None,
        spending: Spending | None = None,
    ) -> None:
        package = alpaca_eval()
        config = annotator_config(name)
        self.name = name
        self.model = endpoint.model or config["completions_kwargs"]["model_name"]
        self.version = f"alpaca_eval {package.__version__}, {name}, model {self.model}"
        self.caller = ChatCaller(endpoint, spending)
        self._cache = JsonLinesCache(cache_path)
        self._replies: dict[str, ChatReply] = {}
        # seed 0: what alpaca_eval's PairwiseAnnotator (and so `alpaca_eval evaluate`) uses
        self._annotator = package.annotators.SinglePairwiseAnnotator(
            **{**config, "fn_completions": self._complete},
            seed=0,
            base_dir=package.constants.EVALUATORS_CONFIG_DIR,
        )

    def annotate(self, items: list[PairwiseItem]) -> list[PairwiseResult]:
        """One preference per item (None with the reason when the call failed or its
        reply could not be parsed), in the items' order."""
        if not items:
            return []
        import pandas as pd

        self._replies = {}
        rows = pd.DataFrame(
            [
                {"item": i, "instruction": p.instruction, "output_1": p.output_1,
                 "output_2": p.output_2}
                for i, p in enumerate(items)
            ]
        )  # fmt: skip
        annotated = self._annotator(rows)
        preferences = dict(zip(annotated["item"], annotated["preference"], strict=True))
        return [
            PairwiseResult(float(preferences[i]))
            if i in preferences and preferences[i] is not None
            else PairwiseResult(None, self._why_undecided(item))
            for i, item in enumerate(items)
        ]

    def _why_undecided(self, item: PairwiseItem) -> str:
        """The failed call's error, else the unparseable reply; found by the prompt that
        holds the item's texts (alpaca_eval may have switched the two outputs)."""
        for prompt, reply in self._replies.items():
            if all(text in prompt for text in (item.instruction, item.output_1, item.output_2)):
                return reply.error or f"unreadable reply: {(reply.text or '')[:80]!r}"
        return "no reply"

    def _complete(self, prompts: list[str], model_name: str, **decoding: Any) -> dict[str, list]:
        """alpaca_eval's completion-function contract (see its openai_completions): the
        chat replies to `prompts`, in order; a failed call is an empty completion, which
        alpaca_eval's parsers turn into a missing annotation."""
        del model_name  # the endpoint's model, or the config's when none is set
        params = {k: v for k, v in decoding.items() if k not in CLIENT_ONLY}
        replies = self.caller.run(self._call_all(prompts, params))
        self._replies.update(zip(prompts, replies, strict=True))
        choices = [{**(r.choice or {}), "text": r.text or ""} for r in replies]
        return {
            "completions": [c["text"] for c in choices],
            "completions_all": choices,
            "price_per_example": [float("nan")] * len(prompts),
            "time_per_example": [r.latency_s for r in replies],
        }

    async def _call_all(self, prompts: list[str], params: dict[str, Any]) -> list[ChatReply]:
        try:
            return list(await asyncio.gather(*(self._call(p, params) for p in prompts)))
        finally:
            self._cache.sync()

    async def _call(self, prompt: str, params: dict[str, Any]) -> ChatReply:
        key = cache_key(self.name, self.model, prompt)
        cached = self._cache.get(key)
        if cached is not None:
            return ChatReply(cached["text"], None, 0.0, choice=cached["choice"])
        messages = alpaca_eval().utils.prompt_to_chatml(prompt.strip())
        reply = await self.caller.chat(self.model, messages, **params)
        if reply.text is not None:
            self._cache.put(key, {"text": reply.text, "choice": reply.choice})
        return reply
