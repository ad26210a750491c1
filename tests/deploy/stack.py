"""The compose stack's services as plain processes on this machine: commands and
environments as `docker-compose config` resolves them, the compose network's names, the
container paths and the head's ports mapped here, each service a session of its own
(killed whole, as `docker kill` kills a container), each Ray node with its own temp dir."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

from tests.deploy.compose import ROOT, docker_compose_config, image_env, words
from tests.ray_cluster import _free_port

BIN = Path(sys.executable).parent


@dataclass
class Stack:
    """The services as `docker-compose config` resolved them, their container paths and
    the compose network's names mapped onto this machine."""

    root: Path
    database_url: str
    services: dict
    head_port: int = field(default_factory=_free_port)
    dashboard_port: int = field(default_factory=_free_port)
    api_port: int = field(default_factory=_free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    def argv(self, command: list[str]) -> list[str]:
        """The command, the head's name and port mapped onto this machine."""
        mapped = [
            word.replace("ray-head:6379", f"127.0.0.1:{self.head_port}")
            .replace("127.0.0.1:6379", f"127.0.0.1:{self.head_port}")
            .replace("--port=6379", f"--port={self.head_port}")
            for word in command
        ]
        if mapped[0] in ("ray", "cutloop"):
            mapped[0] = str(BIN / mapped[0])
        if "--head" in mapped:  # its dashboard and job agent on free ports: another Ray on
            # this machine (the test session's) holds the defaults, 8265 and 52365
            mapped += [f"--dashboard-port={self.dashboard_port}",
                       f"--dashboard-agent-listen-port={_free_port()}"]  # fmt: skip
        return mapped

    def env(self, service: str, **extra: str) -> dict[str, str]:
        """The image's ENV and the service's environment, container paths and service
        names mapped; a Ray temp dir of the node's own (RAY_TMPDIR)."""
        node = self.root / service
        temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths
        values = {**image_env(), **self.services[service].get("environment", {}), **extra}
        mapped = {}
        for key, value in values.items():
            value = str(value).replace("/var/lib/cutloop-node", str(node / "node-home"))
            value = value.replace("/var/lib/cutloop", str(node / "home"))
            value = value.replace("ray-head:6379", f"127.0.0.1:{self.head_port}")
            mapped[key] = value
        if "CUTLOOP_DATABASE_URL" in mapped:
            mapped["CUTLOOP_DATABASE_URL"] = self.database_url
        path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
        return {**os.environ, **mapped, "PATH": path, "RAY_TMPDIR": temp_dir}

    def log(self, service: str) -> Path:
        return self.root / f"{service}.log"

    def start(self, service: str, args: list[str] = (), **extra: str):
        command = self.argv(words(self.services[service]["command"]))
        process = subprocess.Popen(
            [*command, *args], env=self.env(service, **extra), cwd=ROOT,
            stdout=self.log(service).open("a"), stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.processes.append(process)
        return process

    def healthcheck(self, service: str) -> bool:
        test = self.argv(self.services[service]["healthcheck"]["test"][1:])
        return subprocess.run(test, capture_output=True, timeout=60).returncode == 0

    def stop(self, process: subprocess.Popen) -> None:
        """What `docker kill` does to a container: the process and everything it started
        (Ray's daemons leave its process group, not its session)."""
        doomed = session_members(process.pid)
        for member in doomed:
            with suppress(psutil.Error):
                member.kill()
        psutil.wait_procs(doomed, timeout=30)
        process.wait(timeout=30)


def session_members(session: int) -> list[psutil.Process]:
    """The processes of a service's session (its leader's pid), as a container holds them."""
    return [p for p in psutil.process_iter() if _session_of(p) == session]


def _session_of(process: psutil.Process) -> int | None:
    try:
        return os.getsid(process.pid)
    except OSError:
        return None


@contextmanager
def stack(root: Path, database_url: str, settings: dict[str, str]) -> Iterator[Stack]:
    """The services, `settings` the .env of compose (CUTLOOP_API_TOKEN, CAMPAIGN_CONFIG);
    every service started is killed on the way out."""
    resolved = docker_compose_config(settings, root / "empty.env")
    assert resolved.returncode == 0, resolved.stderr
    running = Stack(root, database_url, yaml.safe_load(resolved.stdout)["services"])
    try:
        yield running
    finally:
        for process in running.processes:
            running.stop(process)
