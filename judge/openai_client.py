"""Chat-completion calls to GPT-4 or any OpenAI-compatible endpoint, shared by the
judge and the pairwise annotator: bounded concurrency, the client's own retries (429
with Retry-After, 5xx, timeouts, connection errors; exponential backoff with jitter), a
per-call timeout, and a call/token budget. The API key is read from the environment and
scrubbed from every error message, so it never reaches logs or storage."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from judge.spending import Spending

logger = logging.getLogger(__name__)
T = TypeVar("T")


class EndpointConfig(BaseModel):
    """Where the calls go and how many may be made."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        None, description="null: OpenAI; else any OpenAI-compatible server, e.g. vLLM's "
        "http://HOST:8000/v1",
    )  # fmt: skip
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="the environment variable holding the key (the key "
        "itself is never stored)",
    )  # fmt: skip
    timeout_s: float = Field(
        60.0, gt=0, description="seconds one attempt may take; raise it for slow servers"
    )
    max_retries: int = Field(
        5, ge=0, description="retries after a 429, 5xx, timeout or connection error, with "
        "exponential backoff",
    )  # fmt: skip
    concurrency: int = Field(
        32, ge=1, description="calls in flight at once; lower it when the endpoint answers 429"
    )
    max_calls: int | None = Field(
        None, ge=0, description="budget: calls over the campaign's life, restarts included"
    )
    max_total_tokens: int | None = Field(
        None, ge=0, description="budget: prompt + reply tokens over the campaign's life; "
        "calls in flight when it is reached still finish (at most `concurrency`)",
    )  # fmt: skip


class ChatConfig(EndpointConfig):
    """An endpoint and the decoding of every call to it."""

    model: str = Field(
        "gpt-4", description="the model the endpoint serves (a vLLM server: the name it serves)"
    )
    temperature: float = Field(0.0, ge=0, le=2, description="0: the most likely reply")
    max_tokens: int = Field(512, ge=1, description="longest reply in tokens")


@dataclass(frozen=True)
class ChatReply:
    text: str | None  # None when the call failed
    error: str | None
    latency_s: float
    tokens_in: int = 0
    tokens_out: int = 0
    choice: dict | None = None  # the first choice as sent (message, logprobs, ...)


def first_choice(completion: object) -> dict | None:
    choices = completion.get("choices") if isinstance(completion, dict) else None
    return choices[0] if choices and isinstance(choices[0], dict) else None


def reply_text(choice: dict | None) -> str | None:
    """The message text of a chat completion's choice, or None."""
    message = choice.get("message") if choice else None
    text = message.get("content") if isinstance(message, dict) else None
    return text.strip() or None if isinstance(text, str) else None


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_forever()
    loop.close()


def _close(loop: asyncio.AbstractEventLoop, opened: dict[str, Any]) -> None:
    """When the caller is collected (or at exit): its client closed on its loop, then
    the loop stopped; waits for neither, so it may run on any thread."""

    async def shut() -> None:
        if "client" in opened:
            await opened["client"].close()
        asyncio.get_running_loop().stop()

    loop.call_soon_threadsafe(loop.create_task, shut())


class ChatCaller:
    """Makes chat calls within a budget, counted in `spending` (kept in a file by a
    campaign; in memory by default). `run` a batch of calls."""

    def __init__(self, config: EndpointConfig, spending: Spending | None = None) -> None:
        self.config = config
        self._api_key = os.environ.get(config.api_key_env)
        if self._api_key is None and config.base_url is None:
            raise ValueError(f"api_key_env: environment variable {config.api_key_env} is not set")
        self.spending = spending if spending is not None else Spending()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._opened: dict[str, Any] = {}  # the client and its slots, once made

    def scrub(self, message: str) -> str:
        return message.replace(self._api_key, "***") if self._api_key else message

    def budget_left(self) -> str | None:
        """Why no further call may be made, or None."""
        c, spent = self.config, self.spending
        if c.max_calls is not None and spent.calls >= c.max_calls:
            return f"budget exhausted: max_calls={c.max_calls} reached"
        if c.max_total_tokens is not None and spent.total_tokens >= c.max_total_tokens:
            return f"budget exhausted: max_total_tokens={c.max_total_tokens} reached"
        return None

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """`work` (a batch of calls) on this caller's event loop, which a daemon thread
        keeps for the caller's life: one client, its open connections and one
        concurrency limit serve every batch (a client per batch cost its construction
        and new connections in each commit of a judge stage). The batch's spending is on
        disk, past a power loss, when this returns."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            serving = threading.Thread(target=_serve, args=(self._loop,), daemon=True)
            serving.start()
            weakref.finalize(self, _close, self._loop, self._opened)
        try:
            return asyncio.run_coroutine_threadsafe(work, self._loop).result()
        finally:
            self.spending.sync()

    def _client(self):
        """The loop's client and concurrency limit, made on its first call."""
        if not self._opened:
            from openai import AsyncOpenAI

            self._opened["client"] = AsyncOpenAI(
                base_url=self.config.base_url,
                api_key=self._api_key or "unused",
                max_retries=self.config.max_retries,
                timeout=self.config.timeout_s,
            )
            self._opened["slots"] = asyncio.Semaphore(self.config.concurrency)
        return self._opened["client"], self._opened["slots"]

    async def chat(self, model: str, messages: list[dict[str, str]], **params) -> ChatReply:
        """One chat completion; `params` are further body fields (temperature,
        max_tokens, logprobs, ...)."""
        client, slots = self._client()
        async with slots:
            exhausted = self.budget_left()
            if exhausted:
                return ChatReply(None, exhausted, 0.0)
            self.spending.add(calls=1)
            started = time.perf_counter()
            try:
                # the client's documented raw `post` (same retries, timeouts and errors)
                # returning plain JSON: `chat.completions.create` re-validates the typed
                # params and builds models on every call, 1.4 ms of CPU that capped
                # throughput at concurrency 32 on these machines
                completion = await client.post(
                    "/chat/completions",
                    cast_to=dict,
                    body={"model": model, "messages": messages, **params},
                )
            except Exception as error:  # any failure is recorded, never raised
                return self._failure(f"{type(error).__name__}: {error}", started)
            usage = completion.get("usage") or {}
            tokens_in, tokens_out = (
                usage.get("prompt_tokens") or 0,
                usage.get("completion_tokens") or 0,
            )
            self.spending.add(tokens=tokens_in + tokens_out)
            choice = first_choice(completion)
            text = reply_text(choice)
            if text is None:
                return self._failure("malformed reply: no choices or empty message", started)
            latency = time.perf_counter() - started
            return ChatReply(text, None, latency, tokens_in, tokens_out, choice)

    def _failure(self, reason: str, started: float) -> ChatReply:
        reason = self.scrub(reason)
        logger.warning("judge call failed: %s", reason)
        return ChatReply(None, reason, time.perf_counter() - started)
