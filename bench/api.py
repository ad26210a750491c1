"""The API under load: requests per second and p99 latency of the rounds list and of a
judgments page for 32 concurrent clients, while a campaign runs and, side by side in the
same run, while none does. The server is the app `cutloop serve` runs (uvicorn, one
process) on a tiny campaign's store; the clients are another process. Then the judging
routes: `--clients` annotators, each with their own token, claim, judge (every tenth
skips) and list tasks of a round of TASKS answers as fast as the server lets them. Prints
one JSON line: rounds_rps and judgments_p99_ms (campaign running), their idle
counterparts, and p50/p99 per judging route.

    .venv/bin/python bench/api.py [--clients 32] [--seconds 15] [--store sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import psycopg

ROOT = Path(__file__).resolve().parents[1]
JUDGED = "judged"  # the campaign whose round people judge
TASKS = 4000
WARM_UP_S = 2.0
sys.path.insert(0, str(ROOT))


async def _hammer(url: str, clients: int, seconds: float) -> dict[str, float]:
    """Steady state: what is answered in the first WARM_UP_S (connections opening, the
    server compiling its first queries) is not counted."""
    latencies: list[float] = []
    began = time.perf_counter()
    counted, deadline = began + WARM_UP_S, began + WARM_UP_S + seconds

    async def client(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.get(url) as response:
                response.raise_for_status()
                await response.read()
            if started >= counted:
                latencies.append(time.perf_counter() - started)

    async with _clients(clients) as session:
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - counted
    latencies.sort()
    return {"rps": len(latencies) / elapsed,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)]}  # fmt: skip


def _clients(connections: int, **options) -> aiohttp.ClientSession:
    """aiohttp, not httpx: 32 httpx clients took a core of their own for ~300 requests/s,
    and added a p99 of 0.7 s to a route that does nothing (aiohttp: 3,900/s, 16 ms)."""
    connector = aiohttp.TCPConnector(limit=connections)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(60), **options)


def _percentiles(latencies: list[float]) -> dict[str, float]:
    latencies = sorted(latencies)
    return {"n": len(latencies), "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
            "p99_ms": round(1000 * latencies[int(len(latencies) * 0.99)], 1)}  # fmt: skip


async def _annotate(base: str, tokens: list[str], seconds: float) -> dict:
    """Each token an annotator: claim, then judge (every tenth task: skip), and every
    fifth task list the open tasks, until `seconds` pass or no task is left."""
    tasks = f"{base}/api/v1/campaigns/{JUDGED}/rounds/1/tasks"
    latencies: dict[str, list[float]] = {"claim": [], "judgment": [], "skip": [], "tasks": []}
    deadline = time.perf_counter() + seconds
    judgment = {"text": "It does not answer the question.", "polarity": "negative"}

    async def timed(session, route: str, method: str, url: str, **options) -> dict | None:
        """The reply's JSON body, or None for a 204."""
        started = time.perf_counter()
        async with session.request(method, url, **options) as response:
            response.raise_for_status()
            body = None if response.status == 204 else await response.json()
        latencies[route].append(time.perf_counter() - started)
        return body

    async def annotator(token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        async with _clients(1, headers=headers) as session:
            done = 0
            while time.perf_counter() < deadline:
                claimed = await timed(session, "claim", "POST", f"{tasks}/claim")
                if claimed is None:
                    return
                task = claimed["id"]
                done += 1
                if done % 10 == 0:
                    await timed(session, "skip", "POST", f"{tasks}/{task}/skip")
                else:
                    url = f"{tasks}/{task}/judgment"
                    await timed(session, "judgment", "POST", url, json=judgment)
                if done % 5 == 0:
                    await timed(session, "tasks", "GET", f"{tasks}?limit=20")

    began = time.perf_counter()
    await asyncio.gather(*(annotator(token) for token in tokens))
    elapsed = time.perf_counter() - began
    return {"judging_rps": round(sum(map(len, latencies.values())) / elapsed, 1),
            **{route: _percentiles(spent) for route, spent in latencies.items()}}  # fmt: skip


def load(base: str, campaign: str, clients: int, seconds: float) -> dict[str, dict[str, float]]:
    """In a separate process from the server: both routes, one after the other."""
    return _client_process([sys.executable, __file__, "--load", base, "--campaign", campaign,
                            "--clients", str(clients), "--seconds", str(seconds)])  # fmt: skip


def _client_process(command: list[str]) -> dict:
    """The clients' JSON line; their error's last line when they fail (a request that
    failed or timed out)."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the clients failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


def wait_for(check, what: str, deadline_s: float = 600) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: not within {deadline_s} s")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite",
                        help="postgresql: a fresh database on $CUTLOOP_TEST_POSTGRES_URL's server, "
                        "dropped after")  # fmt: skip
    parser.add_argument("--load", help=argparse.SUPPRESS)  # the client process
    parser.add_argument("--campaign", help=argparse.SUPPRESS)
    parser.add_argument("--tokens", help=argparse.SUPPRESS)  # annotators' tokens, a file
    args = parser.parse_args()
    if args.load and args.tokens:
        tokens = json.loads(Path(args.tokens).read_text())
        print(json.dumps(asyncio.run(_annotate(args.load, tokens, args.seconds))))
        return
    if args.load:
        campaign = f"/api/v1/campaigns/{args.campaign}"
        paths = {"rounds": f"{campaign}/rounds",
                 "judgments": f"{campaign}/rounds/1/judgments?limit=20"}  # fmt: skip
        print(json.dumps({name: asyncio.run(_hammer(args.load + path, args.clients, args.seconds))
                          for name, path in paths.items()}))  # fmt: skip
        return

    from tests.db_fixtures import ADMIN_URL

    work = Path(tempfile.mkdtemp(prefix="cutloop-bench-api-"))
    if args.store == "sqlite":
        url = f"sqlite:///{work / 'bench.db'}"
    else:
        url = ADMIN_URL.rsplit("/", 1)[0] + f"/cutloop_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    try:
        result = measure(url, work, args.clients, args.seconds)
    finally:
        if args.store == "postgresql":
            with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
                connection.execute(
                    f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'
                )
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"clients": args.clients, "seconds": args.seconds, "store": args.store,
                      **result}))  # fmt: skip


def measure(url: str, work: Path, clients: int, seconds: float) -> dict:
    """Serve a tiny campaign's store, load it idle, then while another campaign runs."""
    import httpx
    import ray

    from api.app import create_app
    from api.state import ApiSettings
    from tests.api.served import served_on_a_port
    from tests.orchestrator.campaigns import save_tiny_policy, tiny_campaign

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    policy = save_tiny_policy(work / "policy")
    settings = ApiSettings(database_url=url, home=str(work / "home"), poll_s=0.5)
    with served_on_a_port(create_app(settings)) as base, httpx.Client(base_url=base) as api:

        def start(name: str, **changes) -> None:
            config = tiny_campaign(name, policy, **changes).model_dump(mode="json", by_alias=True)
            api.post("/api/v1/campaigns", json=config).raise_for_status()
            api.post(f"/api/v1/campaigns/{name}/launch").raise_for_status()

        def status(name: str) -> str:
            return api.get(f"/api/v1/campaigns/{name}").json()["status"]

        start("browsed", rounds=2, prompts_per_round=24, commit_every=8)
        wait_for(lambda: status("browsed") == "done", "the browsed campaign")
        idle = load(base, "browsed", clients, seconds)
        start("running", rounds=50, prompts_per_round=24, commit_every=8)
        wait_for(lambda: status("running") == "running", "the running campaign")
        busy = load(base, "browsed", clients, seconds)
        still = status("running")
        api.post("/api/v1/campaigns/running/cancel").raise_for_status()
        wait_for(lambda: api.get("/api/v1/queue").json() == [] and not _driving("running"),
                 "the running campaign's driver to stop")  # fmt: skip
        config = tiny_campaign(JUDGED, policy, judge={"kind": "human"})
        api.post("/api/v1/campaigns", json=config.model_dump(mode="json", by_alias=True))
        tokens = work / "tokens.json"
        tokens.write_text(json.dumps(seed_judging(url, clients)))
        judging = _client_process([sys.executable, __file__, "--load", base, "--tokens",
                                   str(tokens), "--seconds", str(seconds)])  # fmt: skip
    ray.shutdown()
    return {
        "judging_annotators": clients,
        "judging_tasks": TASKS,
        "judging": judging,
        "campaign_running_throughout": still == "running",
        "rounds_rps": round(busy["rounds"]["rps"], 1),
        "judgments_p99_ms": round(busy["judgments"]["p99_ms"], 1),
        "rounds_p99_ms": round(busy["rounds"]["p99_ms"], 1),
        "judgments_rps": round(busy["judgments"]["rps"], 1),
        "idle_rounds_rps": round(idle["rounds"]["rps"], 1),
        "idle_judgments_p99_ms": round(idle["judgments"]["p99_ms"], 1),
        "rounds_rps_ratio_running_to_idle": round(busy["rounds"]["rps"] / idle["rounds"]["rps"], 2),
    }  # fmt: skip


def seed_judging(url: str, annotators: int) -> list[str]:
    """Round 1 of the JUDGED campaign waiting on TASKS answers; the tokens of
    `annotators` annotators."""
    from sqlalchemy import select

    from store.annotators import add_annotator
    from store.campaigns import ensure_round
    from store.engine import make_engine, session_factory
    from store.judging import publish_tasks
    from store.models import Campaign, Split, Stage
    from store.results import add_generations, add_prompts
    from tests.store.factories import generation_rows

    engine = make_engine(url)
    with session_factory(engine).begin() as session:
        campaign = session.scalars(select(Campaign).where(Campaign.name == JUDGED)).one()
        round_ = ensure_round(session, campaign, 1)
        round_.stage = Stage.JUDGE
        instructions = [f"Instruction {i}: answer in one word." for i in range(TASKS)]
        prompts = add_prompts(session, campaign.id, instructions, "bench", Split.TRAIN)
        generations = add_generations(session, generation_rows(round_.id, prompts))
        publish_tasks(session, round_.id, dict.fromkeys(generations))
        tokens = [add_annotator(session, f"annotator-{i}") for i in range(annotators)]
    engine.dispose()
    return tokens


def _driving(name: str) -> bool:
    from orchestrator.launcher import find_driver

    return find_driver(name) is not None


if __name__ == "__main__":
    main()
