"""Store work in a few threads, first come first served, holding no connection between
trips: a real FastAPI app on uvicorn over a real SQLite store whose pool has one
connection, and the real anyio limiter."""

# no `from __future__ import annotations`: FastAPI reads the local apps' annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import anyio
import httpx
from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from api.store_threads import STORE_THREADS, in_store_thread
from tests.api.served import served_on_a_port

REQUESTS = 120  # in flight at once: more than FastAPI's 40 threads and the 1 connection


def test_store_work_runs_on_at_most_store_threads_threads() -> None:
    lock, running, most = threading.Lock(), [0], [0]
    release = threading.Event()

    @in_store_thread
    def work(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        release.wait(timeout=10)
        with lock:
            running[0] -= 1
        return i

    async def main() -> list[int]:
        async with anyio.create_task_group() as group:
            results: list[int] = []

            async def one(i: int) -> None:
                results.append(await work(i))

            for i in range(3 * STORE_THREADS):
                group.start_soon(one, i)
            with anyio.fail_after(10):
                while running[0] < STORE_THREADS:
                    await anyio.sleep(0.01)  # polling a count, under a deadline
            release.set()
        return results

    assert sorted(anyio.run(main)) == list(range(3 * STORE_THREADS))
    assert most[0] == STORE_THREADS


def _one_connection_app(database: Path) -> tuple[FastAPI, sessionmaker[Session]]:
    engine = create_engine(f"sqlite:///{database}", pool_size=1, max_overflow=0, pool_timeout=5)
    sessions = sessionmaker(engine, expire_on_commit=False)

    async def session() -> AsyncIterator[Session]:
        with sessions() as opened:
            yield opened

    Db = Annotated[Session, Depends(session, scope="function")]

    @in_store_thread
    def first_read(db: Db) -> int:
        value = db.execute(text("SELECT 1")).scalar_one()
        assert db.in_transaction()  # the trip ends it: asserted by the route's read
        return value

    app = FastAPI()

    @app.get("/read")
    @in_store_thread
    def read(first: Annotated[int, Depends(first_read)], db: Db) -> dict[str, int]:
        assert not db.in_transaction(), "the dependency's trip left its read open"
        return {"value": first + db.execute(text("SELECT 1")).scalar_one()}

    return app, sessions


def test_more_requests_than_threads_and_connections_are_all_answered(tmp_path: Path) -> None:
    """A request that waits for a thread holds no connection, so the one connection
    goes round: none waits the pool's 5 s out."""
    app, _ = _one_connection_app(tmp_path / "store.db")

    async def load(base: str) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=REQUESTS)
        async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
            return await asyncio.gather(*(client.get("/read") for _ in range(REQUESTS)))

    with served_on_a_port(app) as base:
        responses = asyncio.run(asyncio.wait_for(load(base), timeout=60))
    assert [r.status_code for r in responses] == [200] * REQUESTS
    assert {r.json()["value"] for r in responses} == {2}
