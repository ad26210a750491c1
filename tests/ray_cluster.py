"""Local Ray clusters of several nodes for placement tests, started with the real CLI
(`ray start --head`, then `ray start --address` per further node), each node with its
own temp dir, resources and environment, and torn down by killing exactly its own
processes (never `ray stop`, which would also stop the session's local Ray)."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).with_name("ray"))
RAY_WORKER_PORTS_END = 20_000


@dataclass(frozen=True)
class NodeSpec:
    memory_gb: float
    gpus: int = 0
    cpus: int = 1
    env: dict[str, str] = field(default_factory=dict)


def _free_port() -> int:
    """A free port between Ray's worker ports (10002-19999, its defaults) and the
    kernel's ephemeral range: a port the kernel handed out (bind to 0) and released can
    go to the next process that binds to 0 — one of Ray's, started before the service
    this port is for (a flake seen on 2026-12-07)."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for port in random.sample(range(RAY_WORKER_PORTS_END, low), 200):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {RAY_WORKER_PORTS_END} and {low}")


def _start(args: list[str], spec: NodeSpec, temp_dir: str) -> None:
    command = [RAY, "start", *args, f"--num-cpus={spec.cpus}", f"--num-gpus={spec.gpus}",
               f"--memory={int(spec.memory_gb * 2**30)}", f"--temp-dir={temp_dir}",
               "--disable-usage-stats"]  # fmt: skip
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", **spec.env}
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert started.returncode == 0, f"ray start failed: {started.stderr[-2000:]}"


def kill_processes_of(temp_dirs: list[str]) -> None:
    """Kill the Ray nodes whose temp dirs are given (their daemons name the dir), with
    everything they started."""
    doomed: dict[int, psutil.Process] = {}
    myself = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    for process in psutil.process_iter(["cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if process.pid not in myself and any(d in command for d in temp_dirs):
            with suppress(psutil.Error):
                for p in [process, *process.children(recursive=True)]:
                    doomed[p.pid] = p
    for process in doomed.values():
        with suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(list(doomed.values()), timeout=30)


@contextmanager
def ray_cluster(nodes: list[NodeSpec]) -> Iterator[str]:
    """The head's address; nodes[0] is the head. Short temp dirs: Ray's sockets live
    there and a Unix socket path is limited to 107 bytes."""
    temp_dirs = [tempfile.mkdtemp(prefix="ray", dir="/tmp") for _ in nodes]
    port = _free_port()
    try:
        _start(["--head", f"--port={port}", "--include-dashboard=false"], nodes[0], temp_dirs[0])
        for spec, temp_dir in zip(nodes[1:], temp_dirs[1:], strict=True):
            _start([f"--address=127.0.0.1:{port}"], spec, temp_dir)
        yield f"127.0.0.1:{port}"
    finally:
        kill_processes_of(temp_dirs)
