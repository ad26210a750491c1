"""Where the routes' store work runs: a few threads, taken first come, first served.

FastAPI runs a sync route and each sync dependency in a pool of 40 threads, then checks
the route's return in another trip to that pool. Under load, 32 requests' threads took
turns at the GIL in no order, so the slowest waited four times the median; and a
request waiting for a thread could hold a connection, so a smaller pool ran the
connection pool dry. Here a route or dependency is a coroutine that does its store work
in one trip to `STORE_THREADS` threads: requests wait in order of arrival on the event
loop, holding no connection, and the return is checked on the loop.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import RunVar
from sqlalchemy.orm import Session

STORE_THREADS = 4  # fewer than the store's pooled connections (5)

P = ParamSpec("P")
T = TypeVar("T")
_limiter: RunVar[CapacityLimiter] = RunVar("store_threads")


def _threads() -> CapacityLimiter:
    """This event loop's limiter (a test client runs a loop of its own)."""
    try:
        return _limiter.get()
    except LookupError:
        _limiter.set(CapacityLimiter(STORE_THREADS))
        return _limiter.get()


def in_store_thread(work: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """`work` as a coroutine that runs in one of the store's threads. When it returns, a
    session among its arguments commits: what a route changes it has committed itself,
    so this ends a read and gives the connection back before the request waits for
    anything else (loaded rows stay loaded: sessions do not expire on commit). FastAPI
    reads the parameters of `work` itself (functools.wraps), so dependencies stay as
    written."""

    def trip(*args: P.args, **kwargs: P.kwargs) -> T:
        result = work(*args, **kwargs)
        for value in (*args, *kwargs.values()):
            if isinstance(value, Session):
                value.commit()
        return result

    @functools.wraps(work)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        return await anyio.to_thread.run_sync(
            functools.partial(trip, *args, **kwargs), limiter=_threads()
        )

    return run
