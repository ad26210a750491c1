"""The paper's GPT-4 judge, for OpenAI or any OpenAI-compatible endpoint (docs/cut.md):
a judgment is positive when it starts with the word "perfect". The default prompt is the
paper's plus one sentence asking the judge to quote the faulty text, so each quote found
in the answer becomes a span CUT can flag (judge/quotes.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from pydantic import Field

from cut.examples import Polarity, polarity_of
from judge.base import JudgeRequest, JudgmentResult
from judge.cache import JudgmentCache, cache_key
from judge.openai_client import ChatCaller, ChatConfig
from judge.quotes import quoted_spans
from judge.spending import Spending

PAPER_SYSTEM_PROMPT = (
    "Below is an instruction that describes a task and a potential response. Evaluate the "
    "response and provide valuable judgments to the response. If the response is perfect, "
    "please only reply with 'perfect'. Otherwise, please indicate precisely what mistakes "
    "it has."
)
PAPER_USER_TEMPLATE = "### Instruction: {instruction}\n\n### Response: {response}"
QUOTE_REQUEST = (
    " Quote each faulty part of the response verbatim, in double quotes, so that it can be "
    "found in the response."
)
SYSTEM_PROMPT = PAPER_SYSTEM_PROMPT + QUOTE_REQUEST


class OpenAIJudgeConfig(ChatConfig):
    name: str = Field("openai", description="judge name stored with each judgment")
    system_prompt: str = Field(
        SYSTEM_PROMPT, description="the system message: the paper's prompt "
        "(judge.openai_judge.PAPER_SYSTEM_PROMPT) and a request to quote the faulty text, "
        "whose quotes become spans; a judgment starting with 'perfect' is positive",
    )  # fmt: skip
    user_template: str = Field(
        PAPER_USER_TEMPLATE, description="the user message, with {instruction} and {response}"
    )


class OpenAIJudge:
    def __init__(
        self,
        config: OpenAIJudgeConfig,
        cache: JudgmentCache | None = None,
        spending: Spending | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.cache = cache if cache is not None else JudgmentCache()
        self.caller = ChatCaller(config, spending)  # the budget counts what `spending` holds
        self._template = f"{config.system_prompt}\n\x00\n{config.user_template}"

    def judge(
        self,
        requests: list[JudgeRequest],
        on_result: Callable[[JudgmentResult], None] | None = None,
    ) -> list[JudgmentResult]:
        return self.caller.run(self._judge_all(requests, on_result))

    async def _judge_all(self, requests: list[JudgeRequest], on_result) -> list[JudgmentResult]:
        try:
            return list(await asyncio.gather(*(self._one(r, on_result) for r in requests)))
        finally:
            self.cache.sync()

    async def _one(self, request: JudgeRequest, on_result) -> JudgmentResult:
        key = cache_key(self._template, self.config.model, request.instruction, request.response)
        result = self.cache.get(key, self.name)
        if result is None:
            messages = [
                {"role": "system", "content": self.config.system_prompt},
                {
                    "role": "user",
                    "content": self.config.user_template.format(
                        instruction=request.instruction, response=request.response
                    ),
                },
            ]
            config = self.config
            reply = await self.caller.chat(
                config.model, messages, temperature=config.temperature, max_tokens=config.max_tokens
            )
            extra = {
                "judge_model": self.config.model,
                "latency_s": reply.latency_s,
                "tokens_in": reply.tokens_in,
                "tokens_out": reply.tokens_out,
            }
            if reply.text is None:
                result = JudgmentResult.failed(self.name, reply.error or "unknown error", **extra)
            else:
                result = JudgmentResult.ok(self.name, reply.text, polarity_of(reply.text), **extra)
                self.cache.put(key, result)
        if result.text is not None and result.polarity == Polarity.NEGATIVE:
            result = replace(result, spans=quoted_spans(result.text, request.response))
        if on_result is not None:
            on_result(result)
        return result
