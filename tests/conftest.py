"""Shared fixtures (tiny random models and a character tokenizer, the bundled SmolLM2, a
session's Ray, stores, programs' environments) and the suite's tiers: a test's tier
markers follow from the fixtures it uses, so a new test lands in its tier unasked. A test
with none is a unit test: `make check` runs those (and the store on SQLite)."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from tests.tier_clock import TierClock
from tests.tiny_models import char_tokenizer, tiny_llama

pytest_plugins = ["tests.db_fixtures", "pytester"]

# marker: what a test of that tier needs beyond the Python process; costliest first
TIERS = {
    "e2e": "runs the installed `cutloop` programs as users do, each with its own Ray",
    "cluster": "starts Ray nodes of its own with the ray CLI",
    "browser": "drives Chromium",
    "model": "loads the bundled SmolLM2 (fetched once) or runs vLLM",
    "postgres": "talks to the PostgreSQL server on 127.0.0.1:5432",
    "ray": "runs on a Ray: the session's local one, or one its programs start",
}
# fixture: the tiers a test using it (directly or through another fixture) belongs to
FIXTURE_TIERS = {
    "postgres_server": {"postgres"},
    "ray_local": {"ray"},
    "smollm2_dir": {"model"},
    "ray_nodes": {"cluster", "ray"},
    "browser": {"browser"},
    "cutloop_env": {"e2e", "ray"},
    "compose_stack": {"e2e", "ray", "cluster"},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--unit", action="store_true", help="only the unit tier: tests in no tier (SQLite's too)"
    )


def pytest_configure(config: pytest.Config) -> None:
    for marker, meaning in TIERS.items():
        config.addinivalue_line("markers", f"{marker}: {meaning}")
    if not any(isinstance(p, TierClock) for p in config.pluginmanager.get_plugins()):
        config.pluginmanager.register(TierClock(list(TIERS)))  # bench/suite.py has its own


def tiers_of(item: pytest.Item) -> set[str]:
    """From the fixtures' closure, and from a store parameter: the same test on SQLite is
    in no tier of its own, on PostgreSQL in `postgres`."""
    tiers = set()
    for name in getattr(item, "fixturenames", ()):
        tiers |= FIXTURE_TIERS.get(name, set())
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "postgresql" in callspec.params.values():
        tiers.add("postgres")
    return tiers


# before pytest-xdist's worker reads `xdist_group` in its own hook of this name
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unit, tiered = [], []
    for item in items:
        tiers = tiers_of(item)
        for tier in sorted(tiers):
            item.add_marker(tier)
        if "model" in tiers:  # one pytest-xdist worker: SmolLM2's and vLLM's memory once
            item.add_marker(pytest.mark.xdist_group("model"))
        (tiered if tiers else unit).append(item)
    if config.getoption("--unit"):
        config.hook.pytest_deselected(items=tiered)
        items[:] = unit


@pytest.fixture(autouse=True)
def _unit_tests_start_no_ray(request, monkeypatch) -> None:
    """A unit test that starts Ray fails at once, naming the fixture that would put it in
    its tier (a fixture-less Ray would make `make check` slow without anyone noticing)."""
    if any(request.node.get_closest_marker(tier) for tier in TIERS):
        return
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError("a unit test started Ray: take the ray_local fixture (tier ray)")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer()


@pytest.fixture
def chat_tokenizer() -> PreTrainedTokenizerFast:
    return char_tokenizer(chat=True)


@pytest.fixture
def model(tokenizer) -> LlamaForCausalLM:
    return tiny_llama(len(tokenizer))


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The bundled model, fetched once into $CUTLOOP_HOME (kept between runs)."""
    from orchestrator.models import fetch_bundled

    path = fetch_bundled("smollm2")
    assert (path / "model.safetensors").is_file()
    return path


@pytest.fixture(autouse=True)
def _quiet_threads() -> None:
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray for the whole session (the campaign driver reuses a running Ray)."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # local cluster: no token warning
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def local_hub(tmp_path, monkeypatch):
    """tatsu-lab/alpaca_eval's df_gamed.csv in a local hub cache, with made-up numbers
    of the shape alpaca_eval expects (two gamed baselines for every instruction)."""
    import huggingface_hub.constants
    import pandas as pd

    from judge.alpaca_eval_annotator import alpaca_eval
    from orchestrator.length_control import ALPACA_EVAL_SIZE

    rng = random.Random(1)
    difficulty = [rng.gauss(0, 1) for _ in range(ALPACA_EVAL_SIZE)]
    rows = [  # one model after the other, as alpaca_eval reads difficulty by row
        {"model": model, "index": i, "instruction_difficulty": difficulty[i],
         "preference": rng.random(), "std_delta_len": rng.gauss(0, 1),
         "not_gamed_baseline": False}
        for model in ("gamed_concise", "gamed_verbose")
        for i in range(ALPACA_EVAL_SIZE)
    ]  # fmt: skip
    commit = "0" * 40
    hub = tmp_path / "hub"
    repo = hub / "datasets--tatsu-lab--alpaca_eval"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    pd.DataFrame(rows).to_csv(repo / "snapshots" / commit / "df_gamed.csv", index=False)
    monkeypatch.setattr(alpaca_eval().constants, "DEFAULT_CACHE_DIR", str(hub))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def ray_nodes():
    """`ray_nodes([NodeSpec, ...])`: a context manager giving the address of a Ray cluster
    of those nodes, started with the ray CLI and killed whole after."""
    from tests.ray_cluster import ray_cluster

    return ray_cluster


@pytest.fixture
def cutloop_env(tmp_path) -> Iterator[dict[str, str]]:
    """The environment of the `cutloop` programs a test runs as users do: their own home
    (and SQLite store) and their own short Ray temp dir (Ray's socket paths are limited),
    private, so each Ray they start is found by no other and killed whole after the test."""
    from tests.ray_cluster import kill_processes_of

    ray_tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    env = {**os.environ, "CUTLOOP_HOME": str(tmp_path / "home"), "RAY_TMPDIR": ray_tmp,
           "RAY_AUTH_MODE": "disabled"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    env.pop("CUTLOOP_DATABASE_URL", None)
    try:
        yield env
    finally:
        kill_processes_of([ray_tmp])
        shutil.rmtree(ray_tmp, ignore_errors=True)


@pytest.fixture
def store_env(db_url, tmp_path, monkeypatch, ray_local):
    """A campaign's home and database, seen by this process and the actors."""
    monkeypatch.setenv("CUTLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CUTLOOP_DATABASE_URL", db_url)
    return tmp_path / "home"
