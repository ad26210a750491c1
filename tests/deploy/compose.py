"""docker-compose.yml as data: its services, their commands split into words, and the
container paths and addresses that the stack tests map onto this machine."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def project_services() -> dict[str, dict[str, Any]]:
    """The services that run the project's images (the others run postgres)."""
    return {name: s for name, s in services().items() if "build" in s}


def words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else list(command)


def script_commands(script: Path) -> list[list[str]]:
    """The commands a start script runs, continuation lines joined, `exec` dropped."""
    joined = re.sub(r"\\\n\s*", " ", script.read_text())
    commands = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("set "):
            continue
        commands.append(words(line.removeprefix("exec ")))
    return commands


def image_env() -> dict[str, str]:
    """ENV of the Dockerfile's final stage (the values the containers start with)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    final = text[text.rindex("\nFROM ") :]
    env: dict[str, str] = {}
    for line in final.splitlines():
        if line.startswith("ENV "):
            env.update(pair.split("=", 1) for pair in shlex.split(line.removeprefix("ENV ")))
    return env


def docker_compose_config(
    env: dict[str, str], env_file: Path, *args: str
) -> subprocess.CompletedProcess:
    """Debian's `docker-compose config`: the file validated and interpolated with `env`
    and `env_file` (created empty when missing) alone — nothing from a developer's own
    environment or .env."""
    tool = shutil.which("docker-compose")
    assert tool, "Debian's docker-compose is missing: `make test` installs it (apt-get)"
    env_file.touch()
    text = COMPOSE_FILE.read_text()
    outside = {k: v for k, v in os.environ.items() if k not in text}
    return subprocess.run(
        [tool, "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args, "config"],
        env={**outside, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
