"""Storing 10,000 judgments: the store's batched upsert vs row-by-row ORM inserts, on
SQLite and on PostgreSQL (127.0.0.1:5432), in one run. Prints one JSON line.

    .venv/bin/python bench/store.py [--n 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from store.engine import make_engine, session_factory
from store.models import Judgment
from store.results import add_judgments
from store.schema import upgrade
from tests.store.factories import judgment_row, seeded_generations

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def timed_fill(url: str, n: int, batched: bool) -> float:
    """Seconds to store n ok judgments (over n generations, one judge) in one transaction."""
    upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    with sessions.begin() as s:
        _, _, gen_ids = seeded_generations(s, n_prompts=n)
    rows = [judgment_row(g, text=f"judgment {g}") for g in gen_ids]
    start = time.perf_counter()
    with sessions.begin() as s:
        if batched:
            add_judgments(s, rows)
        else:  # what a straightforward ORM loop does
            for row in rows:
                s.add(Judgment(**row))
                s.flush()
    seconds = time.perf_counter() - start
    engine.dispose()
    return seconds


def run(engine_name: str, n: int, batched: bool) -> float:
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return timed_fill(f"sqlite:///{tmp}/bench.db", n, batched)
    name = f"cutloop_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        return timed_fill(ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", n, batched)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    out: dict[str, float | int] = {"n": args.n, "repeats": args.repeats}
    for engine_name in ("sqlite", "postgres"):
        batched = statistics.median(run(engine_name, args.n, True) for _ in range(args.repeats))
        rowwise = statistics.median(run(engine_name, args.n, False) for _ in range(args.repeats))
        out[f"{engine_name}_10k_judgments_s"] = batched * 10_000 / args.n
        out[f"{engine_name}_rowwise_10k_judgments_s"] = rowwise * 10_000 / args.n
        out[f"{engine_name}_speedup"] = rowwise / batched
    print(json.dumps(out))


if __name__ == "__main__":
    main()
