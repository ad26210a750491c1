"""The API server as `cutloop serve` starts it, a real process on real ports: light (no
torch or transformers in the process), up on a machine where another program holds Ray's
default port, rejoining its own Ray head after a restart, and failing to start Ray in one
line."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from orchestrator.ray_head import HEAD_RECORD, free_port

ROOT = Path(__file__).resolve().parents[2]
CUTLOOP = str(Path(sys.executable).with_name("cutloop"))
HEAVY = ("torch", "transformers", "vllm")
RAY_DEFAULT_PORT = 6379
DEADLINE_S = 120


def test_the_app_imports_no_torch_transformers_or_vllm():
    code = (
        "import sys; import api.app, api.cli; "
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert child.stdout.split() == [], f"importing api.app imported {child.stdout.strip()}"


@pytest.fixture
def ray_default_port_taken() -> Iterator[None]:
    """Something listens on 6379: a Redis server on this machine, else the test's own."""
    with socket.socket() as listener:
        try:
            listener.bind(("127.0.0.1", RAY_DEFAULT_PORT))
            listener.listen()
        except OSError:  # taken already
            pass
        with pytest.raises(OSError):  # whoever holds it, Ray's head cannot have it
            socket.create_server(("", RAY_DEFAULT_PORT)).close()
        yield


@contextmanager
def serving(env: dict[str, str], log: Path) -> Iterator[tuple[psutil.Process, str]]:
    """`cutloop serve` on a free port, once its health route answers; stopped after."""
    port = free_port()
    with log.open("a") as output:
        server = subprocess.Popen(
            [CUTLOOP, "serve", "--port", str(port)], env=env, stdout=output, stderr=output
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not answers(base):
            assert server.poll() is None, f"serve exited {server.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"serve did not answer in {DEADLINE_S} s: " + (
                log.read_text()
            )
            time.sleep(0.2)  # polling a starting server, under a deadline
        yield psutil.Process(server.pid), base
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            raise AssertionError("serve did not stop within 30 s of SIGTERM") from None


def answers(base: str) -> bool:
    try:
        httpx.get(f"{base}/health", timeout=5)
    except httpx.TransportError:
        return False
    return True


def heads(env: dict[str, str]) -> list[psutil.Process]:
    """The GCS servers of the Ray heads started in the test's temp dir."""
    return [
        p
        for p in psutil.process_iter(["cmdline"])
        if "gcs_server" in " ".join(p.info["cmdline"] or [])
        and env["RAY_TMPDIR"] in " ".join(p.info["cmdline"] or [])
    ]


def test_serve_starts_its_own_ray_beside_a_taken_6379_and_rejoins_it_after_a_restart(
    cutloop_env, ray_default_port_taken, tmp_path
):
    log = tmp_path / "serve.log"
    with serving(cutloop_env, log) as (server, base):
        health = httpx.get(f"{base}/health").json()
        assert (health["status"], health["ray"]) == ("ok", "connected"), health
        assert httpx.get(f"{base}/api/v1/campaigns").json() == []
        loaded = {Path(m.path).name for m in server.memory_maps()}
        assert not any("torch" in name for name in loaded), sorted(loaded)
    record = Path(cutloop_env["CUTLOOP_HOME"], HEAD_RECORD).read_text()
    assert not record.endswith(f":{RAY_DEFAULT_PORT}"), record
    assert len(heads(cutloop_env)) == 1, "the head outlives the server"

    with serving(cutloop_env, log) as (_, base):
        assert httpx.get(f"{base}/health").json()["ray"] == "connected"
    assert Path(cutloop_env["CUTLOOP_HOME"], HEAD_RECORD).read_text() == record
    assert len(heads(cutloop_env)) == 1, "the restarted server joined the same head"


def serve_fails(env: dict[str, str], *args: str) -> str:
    """The one line of a `cutloop serve` that could not start Ray and exited non-zero."""
    done = subprocess.run(
        [CUTLOOP, "serve", "--port", str(free_port()), *args],
        env=env, capture_output=True, text=True, timeout=DEADLINE_S,
    )  # fmt: skip
    assert done.returncode != 0, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_ray_port_in_use_is_one_line_and_a_failed_exit(cutloop_env):
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        line = serve_fails(cutloop_env, "--ray-port", str(port))
    assert line.startswith("error: could not start a Ray head:"), line
    assert f"port {port} is in use by another program" in line, line


def test_another_ray_failure_is_one_line_naming_rays_own_error(cutloop_env):
    """A Ray temp dir too long for Ray's Unix sockets: Ray's own reason, in one line."""
    too_long = Path(cutloop_env["RAY_TMPDIR"], "x" * 100)
    too_long.mkdir()
    line = serve_fails({**cutloop_env, "RAY_TMPDIR": str(too_long)})
    assert line.startswith("error: could not start a Ray head on port"), line
    assert "AF_UNIX path length cannot exceed 107 bytes" in line, line
