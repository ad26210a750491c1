"""A failed round reads well: one line for tables and the exit message, the whole
error for the store; a worker killed by Ray's memory monitor says so and what to do."""

from __future__ import annotations

import subprocess
import sys

from orchestrator.failures import full_detail, one_line


def test_an_actor_killed_by_the_memory_monitor_is_reported_in_one_line(cutloop_env):
    done = subprocess.run(
        [sys.executable, "-m", "tests.orchestrator.oom_process"],
        capture_output=True, text=True, timeout=300, env=cutloop_env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    assert line.startswith("a worker was killed by Ray's memory monitor during train (node memory")
    assert "cut.max_tokens_per_micro_batch" in line and len(line) < 300


def test_other_errors_keep_their_first_line_and_the_store_gets_everything():
    try:
        raise ValueError("first line\nsecond line with detail")
    except ValueError as error:
        caught = error
    assert one_line(caught, "build") == "ValueError: first line"
    detail = full_detail(caught)
    assert "second line with detail" in detail and "Traceback" in detail
    assert one_line(RuntimeError("x" * 1000), "train").endswith("…")
    assert len(one_line(RuntimeError("x" * 1000), "train")) == 300
