"""Chat-completion calls to GPT-4 or any OpenAI-compatible endpoint, shared by the
judge and the pairwise annotator: bounded concurrency, retries (429 with Retry-After,
5xx, timeouts, connection errors; exponential backoff with jitter: judge/chat_post.py),
a per-call timeout, and a call/token budget. The API key is read from the environment and
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
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

import aiohttp
from pydantic import BaseModel, ConfigDict, Field

from judge.chat_post import CallFailed, post_chat
from judge.spending import Spending

logger = logging.getLogger(__name__)
T = TypeVar("T")
OPENAI_URL = "https://api.openai.com/v1"


class EndpointConfig(BaseModel):
    """Where the calls go and how many may be made."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        None, description=f"null: OpenAI (OPENAI_BASE_URL if set, else {OPENAI_URL}); else "
        "any OpenAI-compatible server, e.g. vLLM's http://HOST:8000/v1",
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


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, NO_PROXY, ...), as the
    OpenAI client honours it; looked up once, not on each call as aiohttp's trust_env
    does (0.6 ms of CPU a call)."""
    host = urlsplit(url).hostname or ""
    return None if proxy_bypass(host) else getproxies().get(urlsplit(url).scheme)


def request_headers(api_key: str | None) -> dict[str, str]:
    """The key, and the organization and project the environment names, as the OpenAI
    client sends them (OPENAI_ORG_ID, OPENAI_PROJECT_ID)."""
    named = {
        "Authorization": f"Bearer {api_key}" if api_key else None,
        "OpenAI-Organization": os.environ.get("OPENAI_ORG_ID"),
        "OpenAI-Project": os.environ.get("OPENAI_PROJECT_ID"),
    }
    return {header: value for header, value in named.items() if value}


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_forever()
    loop.close()


def _close(loop: asyncio.AbstractEventLoop, serving: threading.Thread, opened: dict) -> None:
    """When the caller is collected (or at exit): its session closed on its loop, then
    the loop stopped; waited for (a few seconds at most) unless this is the loop's own
    thread, so no connection is left open as the process exits."""

    async def shut() -> None:
        if "session" in opened:
            await opened["session"].close()
        asyncio.get_running_loop().stop()

    loop.call_soon_threadsafe(loop.create_task, shut())
    if threading.current_thread() is not serving:
        serving.join(timeout=5)


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
        self._opened: dict[str, Any] = {}  # the session and its slots, once made
        base_url = config.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        self._url = f"{base_url.rstrip('/')}/chat/completions"
        self._headers = request_headers(self._api_key)

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
        keeps for the caller's life: one HTTP session, its open connections and one
        concurrency limit serve every batch (a session per batch cost its construction
        and new connections in each commit of a judge stage). The batch's spending is on
        disk, past a power loss, when this returns."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            serving = threading.Thread(target=_serve, args=(self._loop,), daemon=True)
            serving.start()
            weakref.finalize(self, _close, self._loop, serving, self._opened)
        try:
            return asyncio.run_coroutine_threadsafe(work, self._loop).result()
        finally:
            self.spending.sync()

    def _session(self):
        """The loop's HTTP session and concurrency limit, made on its first call."""
        if not self._opened:
            self._opened["session"] = aiohttp.ClientSession(
                # one connection per call in flight
                connector=aiohttp.TCPConnector(limit=self.config.concurrency),
                proxy=environment_proxy(self._url),
            )
            self._opened["slots"] = asyncio.Semaphore(self.config.concurrency)
        return self._opened["session"], self._opened["slots"]

    async def chat(self, model: str, messages: list[dict[str, str]], **params) -> ChatReply:
        """One chat completion; `params` are further body fields (temperature,
        max_tokens, logprobs, ...)."""
        session, slots = self._session()
        async with slots:
            exhausted = self.budget_left()
            if exhausted:
                return ChatReply(None, exhausted, 0.0)
            self.spending.add(calls=1)
            started = time.perf_counter()
            try:
                completion = await post_chat(
                    session,
                    self._url,
                    {"model": model, "messages": messages, **params},
                    self._headers,
                    self.config.timeout_s,
                    self.config.max_retries,
                )
            except Exception as error:  # any failure is recorded, never raised
                plain = isinstance(error, CallFailed)  # its message says it all
                reason = str(error) if plain else f"{type(error).__name__}: {error}"
                return self._failure(reason, started)
            usage = completion.get("usage") if isinstance(completion, dict) else None
            tokens_in = (usage or {}).get("prompt_tokens") or 0
            tokens_out = (usage or {}).get("completion_tokens") or 0
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
