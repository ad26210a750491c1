"""The API served as `cutloop serve` serves it, and the finished campaign the read-only
tests browse."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

FINISHED = "finished"


@contextmanager
def served_on_a_port(app: FastAPI, deadline_s: float = 30.0) -> Iterator[str]:
    """`app` served by uvicorn on a free loopback port, as `cutloop serve` does."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + deadline_s
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped while starting"
        assert time.monotonic() < deadline, f"uvicorn did not start within {deadline_s} s"
        time.sleep(0.05)  # polling a flag, under a deadline
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=deadline_s)
