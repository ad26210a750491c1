"""The Ray cluster an API server works on: the one it is given, else the head it started
before, else a new head of its own. That head is started with `ray start --head`, so it
outlives the server and the campaigns it launched keep running across a restart. It
takes a free port (or the one asked for), not Ray's default 6379, which another program
(a Redis server, another Ray) may hold. Its address is kept in $CUTLOOP_HOME/ray-head.
Any failure is a RayStartError of one line; Ray's own output, tens of lines, goes to
the log (`cutloop -v serve` shows it)."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

from orchestrator.failures import MAX_LINE, full_detail, one_line
from store.home import cutloop_home

logger = logging.getLogger(__name__)

HEAD_RECORD = "ray-head"
EXCEPTION_LINE = re.compile(r"^\w*(Error|Exception)\b")


class RayStartError(RuntimeError):
    """Ray could not be joined or started; the message is one line."""


def join_cluster(address: str | None, head_port: int | None = None) -> None:
    """Join `address`, else $RAY_ADDRESS, else the head a server started on this machine
    before, else start one on `head_port` (None: a free port). With $RAY_TMPDIR set, the
    node whose temp dir is $RAY_TMPDIR/ray (docker/start-orchestrator.sh starts it so):
    where several nodes share a machine Ray would join the head, and campaigns launched
    here are pinned to the node this process joined."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local cluster needs no token
    address = address or os.environ.get("RAY_ADDRESS") or running_head() or start_head(head_port)
    node = {"_temp_dir": f"{os.environ['RAY_TMPDIR']}/ray"} if "RAY_TMPDIR" in os.environ else {}
    try:
        ray.init(address=address, log_to_driver=False, **node)
    except Exception as error:  # whatever Ray raises, the person reads one line
        logger.info("joining the Ray cluster at %s failed:\n%s", address, full_detail(error))
        raise RayStartError(
            f"could not join the Ray cluster at {address}: {one_line(error, 'start')}"
        ) from None


def running_head() -> str | None:
    """The address of the head a server started before, if it still listens (a head
    stopped by `ray stop` or a reboot leaves its record behind)."""
    record = cutloop_home() / HEAD_RECORD
    if not record.is_file():
        return None
    address = record.read_text().strip()
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return None
    return address


def start_head(port: int | None) -> str:
    """Start a head that outlives this process on `port` (None: one free now) and record
    its address. A taken port fails at once (Ray would take ~40 s to give up on it)."""
    if port is None:
        port = free_port()
    elif not port_is_free(port):
        raise RayStartError(
            f"could not start a Ray head: port {port} is in use by another program; "
            "choose another --ray-port, or none for a free one"
        )
    ray_cli = str(Path(sys.executable).with_name("ray"))
    command = [ray_cli, "start", "--head", f"--port={port}", f"--num-cpus={os.cpu_count()}",
               "--disable-usage-stats", "--include-dashboard=false"]  # fmt: skip
    started = subprocess.run(command, capture_output=True, text=True)
    if started.returncode != 0:
        logger.info("`%s` failed:\n%s%s", " ".join(command), started.stdout, started.stderr)
        raise RayStartError(
            f"could not start a Ray head on port {port}: {_last_error(started.stderr)} "
            "(`cutloop -v serve` logs Ray's output)"
        )
    address = f"127.0.0.1:{port}"
    (cutloop_home() / HEAD_RECORD).write_text(address)
    return address


def _last_error(output: str) -> str:
    """The last exception line of Ray's output (a traceback and log lines around it)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if EXCEPTION_LINE.match(line)), None)
    reason = reason or (lines[-1] if lines else "it printed nothing")
    return reason if len(reason) <= MAX_LINE else reason[: MAX_LINE - 1] + "…"


def port_is_free(port: int) -> bool:
    """Nothing listens on `port` on any address: Ray's head binds them all."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is free
        try:
            probe.bind(("", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port free on every address now (Ray's head takes it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]
