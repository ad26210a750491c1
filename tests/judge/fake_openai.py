"""An OpenAI-compatible chat-completions server for tests and benchmarks, on 127.0.0.1.

Replies depend on markers in the user message, so each request's fate is known
whatever the order in which concurrent requests arrive:
- `[[good]]` in the message: the reply is "Perfect."; otherwise a negative judgment.
- `[[quote:TEXT]]`: a negative judgment that quotes TEXT in double quotes, each `_` a
  space (so the marker itself never holds the quote).
- `[[coin]]`: "Perfect." or the negative judgment by a hash of the whole message, so
  answers to one instruction get different judgments, each the same on every retry.
- AlpacaEval's prompts (alpaca_eval_gpt4's ranking, weighted_alpaca_eval_gpt4_turbo's
  identifier with logprobs, whichever order the outputs were shown in): the output
  holding `[[best]]` is preferred, else the longer one; the weighted annotator's reply
  gives the preferred identifier probability 0.8 (0.7 when decided by length), and
  carries logprobs only when the request asks for them. `[[garbage]]` anywhere gives an
  unreadable reply.
- `[[fault:KIND:N]]`: the first N attempts for that message fail with KIND, later ones
  succeed; N = `always` never succeeds. KIND: `500`, `429` (with Retry-After:
  `retry_after_s`), `hang` (longer than any client timeout), `empty` (no choices),
  `badjson` (a body that is not JSON), `badbytes` (a 502 whose body is not the UTF-8 it
  claims), `echo` (a 400 whose message repeats the
  Authorization header, as careless servers do).
Every request is recorded (message, time, the client's address, its headers) for
assertions.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

FAULT = re.compile(r"\[\[fault:(?P<kind>\w+):(?P<count>\w+)\]\]")
RANKED = re.compile(r'"model": "(model_[12])",\s*"answer": """(.*?)"""', re.DOTALL)
IDENTIFIED = re.compile(r'"model_identifier": "([mM])",\s*"output": """(.*?)"""', re.DOTALL)
NEGATIVE = "The answer is wrong: 7 x 8 is 56, not 54."
QUOTE = re.compile(r"\[\[quote:(.+?)\]\]")


@dataclass
class Recorded:
    content: str
    at: float
    peer: tuple[str, int] | None  # the client's address: which connection it came on
    headers: dict[str, str]  # names lower-cased, as they came

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")


@dataclass
class FakeOpenAI:
    latency_s: float = 0.0
    retry_after_s: float = 0.3
    hang_s: float = 5.0
    port: int = 0  # 0: any free port
    hold_after: int | None = None  # requests after this many wait for `released`
    released: threading.Event = field(default_factory=threading.Event)
    requests: list[Recorded] = field(default_factory=list)
    attempts: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        # plain Starlette (FastAPI's core): the least server CPU per request
        self.app = Starlette(
            routes=[Route("/v1/chat/completions", self._complete, methods=["POST"])]
        )

    async def _complete(self, request: Request) -> Response:
        body = await request.json()
        content = "\n".join(m["content"] for m in body["messages"])
        peer = tuple(request.client) if request.client else None
        recorded = Recorded(content, time.monotonic(), peer, dict(request.headers))
        self.requests.append(recorded)
        self.attempts[content] += 1
        if self.hold_after is not None and len(self.requests) > self.hold_after:
            await asyncio.to_thread(self.released.wait)  # a test decides when it answers
        await asyncio.sleep(self.latency_s)
        fault = FAULT.search(content)
        if fault and (fault["count"] == "always" or self.attempts[content] <= int(fault["count"])):
            return await self._fail(fault["kind"], recorded.authorization)
        completion = self._completion(body["model"], content, [self._reply(content)])
        if IDENTIFIED.search(content) and body.get("logprobs"):
            completion["choices"][0]["logprobs"] = self._logprobs(content)
        return JSONResponse(completion)

    @staticmethod
    def _preferred(outputs: list[tuple[str, str]]) -> tuple[str, float]:
        """(label of the preferred output, its probability) of two (label, output)."""
        marked = [label for label, text in outputs if "[[best]]" in text]
        if marked:
            return marked[0], 0.8
        (label_1, text_1), (label_2, text_2) = outputs
        return (label_1 if len(text_1) >= len(text_2) else label_2), 0.7

    def _logprobs(self, content: str) -> dict:
        label, p = self._preferred(IDENTIFIED.findall(content))
        other = "M" if label == "m" else "m"
        if "[[garbage]]" in content:  # neither identifier among the likely tokens
            label, other = "I", "The"
        top = [
            {"token": label, "logprob": math.log(p)},
            {"token": other, "logprob": math.log(1 - p)},
        ]
        return {"content": [{"token": label, "logprob": math.log(p), "top_logprobs": top}]}

    def _reply(self, content: str) -> str:
        if "[[garbage]]" in content and (RANKED.search(content) or IDENTIFIED.search(content)):
            return "I would pick the second one."
        if RANKED.search(content):
            first, _ = self._preferred(RANKED.findall(content))
            second = "model_2" if first == "model_1" else "model_1"
            return str([{"model": first, "rank": 1}, {"model": second, "rank": 2}])
        if IDENTIFIED.search(content):
            return self._preferred(IDENTIFIED.findall(content))[0]
        if quoted := QUOTE.search(content):
            return f'The answer is wrong: "{quoted[1].replace("_", " ")}" should say 56.'
        if "[[coin]]" in content:
            return "Perfect." if hashlib.sha256(content.encode()).digest()[0] % 2 else NEGATIVE
        return "Perfect." if "[[good]]" in content else NEGATIVE

    async def _fail(self, kind: str, authorization: str | None) -> Response:
        if kind == "500":
            return JSONResponse({"error": {"message": "internal error"}}, status_code=500)
        if kind == "429":
            headers = {"retry-after": str(self.retry_after_s)}
            return JSONResponse(
                {"error": {"message": "slow down"}}, status_code=429, headers=headers
            )
        if kind == "hang":
            await asyncio.sleep(self.hang_s)
            return JSONResponse({"error": {"message": "too late"}}, status_code=500)
        if kind == "empty":
            return JSONResponse(self._completion("m", "", []))
        if kind == "badjson":
            return Response("{not json", media_type="application/json")
        if kind == "badbytes":  # an error body that is not the UTF-8 it claims to be
            return Response(b"\xff\xfe gateway", status_code=502, media_type="text/plain")
        if kind == "echo":  # a careless server that repeats the credentials it was sent
            message = f"invalid request from {authorization}"
            return JSONResponse({"error": {"message": message}}, status_code=400)
        raise ValueError(f"unknown fault {kind}")

    @staticmethod
    def _completion(model: str, prompt: str, texts: list[str]) -> dict:
        return {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": t},
                    "finish_reason": "stop",
                }
                for i, t in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": len(prompt) // 4,
                "completion_tokens": sum(len(t) // 4 for t in texts),
                "total_tokens": len(prompt) // 4 + sum(len(t) // 4 for t in texts),
            },
        }

    def __enter__(self) -> FakeOpenAI:
        # bound and listening before the server thread starts: clients never race it
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(1024)
        self.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
        config = uvicorn.Config(
            self.app, log_level="warning", timeout_graceful_shutdown=1, loop="asyncio", http="h11"
        )  # the same server stack whatever extras are installed
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]})
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.released.set()  # held requests must not keep the server from stopping
        self._server.should_exit = True
        self._thread.join(timeout=10)


def main() -> None:
    """Serve in this process until killed; print the base URL once listening. Benchmarks
    run the server this way so that it does not share the client's interpreter."""
    import argparse

    parser = argparse.ArgumentParser(description="OpenAI-compatible test server")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    fake = FakeOpenAI(latency_s=args.latency)
    with fake:
        print(fake.base_url, flush=True)
        fake._thread.join()


if __name__ == "__main__":
    main()
