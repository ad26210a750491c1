"""Following a launched campaign: its event stream, its stored rounds, and waiting on
either under a deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from store.engine import make_engine, session_factory
from store.models import Generation, Round, TrainingRun
from tests.orchestrator.campaigns import tiny_campaign

DEADLINE_S = 300


def config_of(name: str, policy, **changes) -> dict:
    return tiny_campaign(name, policy, **changes).model_dump(mode="json", by_alias=True)


def follow(client: TestClient, name: str) -> Iterator[tuple[str, dict]]:
    """The campaign's events, as (event, data), until `end`."""
    with client.stream("GET", f"/api/v1/campaigns/{name}/events", timeout=DEADLINE_S) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                yield event, json.loads(line.removeprefix("data: "))
                if event == "end":
                    return


def wait_until(check, what: str, deadline_s: float = DEADLINE_S):
    deadline = time.monotonic() + deadline_s
    while not (value := check()):
        assert time.monotonic() < deadline, f"{what} not within {deadline_s} s"
        time.sleep(0.2)  # polling the store or the cluster, under a deadline
    return value


def stored_counts(db_url: str) -> dict[int, tuple[int, int]]:
    """Per round index: (generations, training runs)."""
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            rows = session.execute(
                select(
                    Round.index,
                    func.count(Generation.id.distinct()),
                    func.count(TrainingRun.id.distinct()),
                )
                .outerjoin(Generation, Generation.round_id == Round.id)
                .outerjoin(TrainingRun, TrainingRun.round_id == Round.id)
                .group_by(Round.index)
            )
            return {index: (g, t) for index, g, t in rows}
    finally:
        engine.dispose()


def round_holder(db_url: str) -> str | None:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            return session.scalar(select(Round.claimed_by).where(Round.claimed_by.is_not(None)))
    finally:
        engine.dispose()
