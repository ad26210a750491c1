from __future__ import annotations

import pytest

from tests.deploy.stack import stack


@pytest.fixture
def compose_stack():
    """`compose_stack(directory, database_url, settings)`: a context manager running the
    compose file's services as processes on this machine (tests/deploy/stack.py)."""
    return stack
