"""One chat-completions POST with the retries an OpenAI-compatible endpoint expects, over
aiohttp: a 408, 409, 429 or 5xx reply (or `x-should-retry: true`), a timeout or a failed
connection is retried after its Retry-After or an exponential backoff with jitter (the
OpenAI client's policy: 0.5 s doubling to 8 s, less up to a quarter). Written here, not
through the `openai` client, for its CPU: the client spent 1.1-1.4 ms per call against
0.3 ms for aiohttp (docs/performance.md), the bound with 32-64 calls in flight on 2
cores. vLLM's and SGLang's serving benchmarks drive their endpoints the same way."""

from __future__ import annotations

import asyncio
import json
import random
import time
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

RETRIED_STATUS = frozenset({408, 409, 429})
MAX_RETRY_AFTER_S = 60.0  # a longer Retry-After is not waited for: the backoff is used


class CallFailed(Exception):
    """A call that failed for good (or whose last retry failed); the message is one line."""


def backoff_s(retry: int) -> float:
    return min(0.5 * 2**retry, 8.0) * (1 - 0.25 * random.random())


def retry_after_s(headers) -> float | None:
    """The wait a reply asks for (retry-after-ms, or Retry-After in seconds or as a
    date), when it is a sensible one."""
    if (ms := _number(headers.get("retry-after-ms", ""))) is not None:
        wait = ms / 1000
    elif (wait := _number(after := headers.get("retry-after", ""))) is None and after:
        try:
            wait = parsedate_to_datetime(after).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return wait if wait is not None and 0 < wait <= MAX_RETRY_AFTER_S else None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _retried(status: int, headers) -> bool:
    should = headers.get("x-should-retry")
    if should in ("true", "false"):
        return should == "true"
    return status in RETRIED_STATUS or status >= 500


async def post_chat(
    session: aiohttp.ClientSession,
    url: str,
    body: dict,
    headers: dict[str, str],
    timeout_s: float,
    max_retries: int,
) -> Any:
    """The reply's JSON (an object where the endpoint keeps to the API), or CallFailed
    saying why the last attempt failed."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    for retry in range(max_retries + 1):
        wait = None
        try:
            async with session.post(url, json=body, headers=headers, timeout=timeout) as reply:
                raw = await reply.read()
                if reply.status < 400:
                    try:
                        return json.loads(raw)  # bytes: JSON finds its own encoding
                    except ValueError as error:
                        raise CallFailed(f"unreadable reply (not JSON): {error}") from None
                # an error's body is shown whatever bytes it holds
                text = " ".join(raw.decode(errors="replace").split())
                failure = f"HTTP {reply.status} {reply.reason}: {text[:500]}"
                if not _retried(reply.status, reply.headers):
                    raise CallFailed(failure)
                wait = retry_after_s(reply.headers)
        except TimeoutError:  # aiohttp's timeouts are TimeoutErrors too
            failure = f"timed out after {timeout_s:g} s"
        except aiohttp.ClientError as error:  # refused, reset, DNS, TLS, a torn reply
            failure = f"connection error: {type(error).__name__}: {error}"
        if retry < max_retries:
            await asyncio.sleep(wait if wait is not None else backoff_s(retry))
    raise CallFailed(failure)
