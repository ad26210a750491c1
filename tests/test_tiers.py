"""The suite's tiers: a test written later lands in the tier of the fixtures it uses, and
a unit test that starts Ray fails instead of slowing `make check` down unnoticed."""

from __future__ import annotations

from pathlib import Path

import pytest

NEW_TESTS = """
import ray

def test_plain(): pass
def test_on_a_store(db_url): pass
def test_on_a_campaigns_store(store_env): pass
def test_with_smollm2(smollm2_dir): pass
def test_with_programs(cutloop_env): pass
def test_with_nodes(ray_nodes): pass
def test_starting_ray_unasked(): ray.init()
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest("from tests.conftest import *  # noqa: F403  (the suite's hooks)")
    pytester.makepyfile(test_new=NEW_TESTS)
    return pytester


def collected(suite: pytest.Pytester, *args: str) -> set[str]:
    result = suite.runpytest("--collect-only", "-q", *args)
    return {line.split("::")[1] for line in result.outlines if "::" in line}


def test_each_fixture_puts_its_tests_in_its_tier(suite):
    assert collected(suite, "-m", "postgres") == {
        "test_on_a_store[postgresql]", "test_on_a_campaigns_store[postgresql]"
    }  # fmt: skip
    assert collected(suite, "-m", "ray") == {
        "test_on_a_campaigns_store[sqlite]", "test_on_a_campaigns_store[postgresql]",
        "test_with_programs", "test_with_nodes",
    }  # fmt: skip
    assert collected(suite, "-m", "model") == {"test_with_smollm2"}
    assert collected(suite, "-m", "e2e") == {"test_with_programs"}
    assert collected(suite, "-m", "cluster") == {"test_with_nodes"}
    assert collected(suite, "--unit") == {
        "test_plain", "test_on_a_store[sqlite]", "test_starting_ray_unasked"
    }  # fmt: skip


def test_a_unit_test_that_starts_ray_fails_naming_the_fixture(suite):
    result = suite.runpytest("-k", "test_starting_ray_unasked")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*a unit test started Ray: take the ray_local fixture*"])


GROUPED_TESTS = """
import os

import pytest

@pytest.fixture
def smollm2_dir():  # the name puts a test in the model tier; nothing is loaded
    return None

@pytest.mark.parametrize("i", range(6))
def test_with_smollm2(smollm2_dir, i):
    with open(os.environ["WORKERS_SEEN"], "a") as seen:
        seen.write(os.environ["PYTEST_XDIST_WORKER"] + "\\n")

@pytest.mark.parametrize("i", range(6))
def test_plain(i):
    pass
"""


def test_the_model_tier_runs_on_one_worker_of_two(pytester: pytest.Pytester, monkeypatch):
    """What `make test` relies on for SmolLM2's and vLLM's memory (two vLLM engines at
    once filled a 24 GB machine when pytest 9.2 broke pytest-xdist's grouping)."""
    pytester.makeconftest("from tests.conftest import *  # noqa: F403  (the suite's hooks)")
    pytester.makepyfile(test_grouped=GROUPED_TESTS)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))  # `tests`
    seen = pytester.path / "workers-seen.txt"
    monkeypatch.setenv("WORKERS_SEEN", str(seen))
    pytester.runpytest_subprocess("-n", "2", "--dist", "loadgroup").assert_outcomes(passed=12)
    workers = set(seen.read_text().split())
    assert len(workers) == 1, f"the model tier ran on {sorted(workers)}"
