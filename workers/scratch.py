"""Node-local scratch for weights a generator receives through Ray's object store:
/dev/shm (memory) when it has room, else the temp dir. Each process has its own
directory, removed at exit; what processes that are gone left (a killed actor skips
atexit) is removed by the next one."""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

SCRATCH_PREFIX = "cutloop-weights-"
WEIGHTS_FILE = "model.safetensors"


@functools.cache
def _scratch_root(parent: Path) -> Path:
    """This process's scratch under `parent`; what processes that are gone left there
    (an actor killed skips atexit) is removed first: /dev/shm is memory."""
    for stale in parent.glob(f"{SCRATCH_PREFIX}*"):
        pid = stale.name.removeprefix(SCRATCH_PREFIX)
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    root = parent / f"{SCRATCH_PREFIX}{os.getpid()}"
    root.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, root, True)
    return root


def new_directory(name: str, nbytes: int) -> Path:
    """A new node-local directory for `nbytes` of received weights: in /dev/shm when it
    has room (containers often give it 64 MB), else the temp dir."""
    shm = Path("/dev/shm")
    roomy = shm.is_dir() and shutil.disk_usage(shm).free > 1.1 * nbytes
    directory = _scratch_root(shm if roomy else Path(tempfile.gettempdir())) / name
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    return directory


@contextmanager
def scratch_directory(name: str, nbytes: int) -> Iterator[Path]:
    """A new_directory removed when the block ends."""
    directory = new_directory(name, nbytes)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)
