import socket
import subprocess
import sys

import psutil
import pytest

from orchestrator.driver import runner_identity, runner_is_gone
from orchestrator.runtime import gpu_shares


def test_a_runner_is_gone_only_when_its_process_on_this_machine_is():
    assert not runner_is_gone(runner_identity())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = int(psutil.Process(child.pid).create_time())
    child.wait()
    assert runner_is_gone(f"{socket.gethostname()}:{child.pid}:{started}")
    assert not runner_is_gone(f"another-host:{child.pid}:{started}")  # its lease decides


@pytest.mark.parametrize(
    ("gpus", "replicas", "expected"),
    [(0, 2, (0.0, 0.0)), (3, 2, (1.0, 1.0)), (8, 2, (1.0, 1.0)), (1, 1, (0.5, 0.5))],
)
def test_gpu_shares(gpus, replicas, expected):
    assert gpu_shares(gpus, replicas) == expected
