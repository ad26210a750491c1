"""The precision probe runs inside the trainer and the generator: it must not change
the threads torch computes with."""

from __future__ import annotations

import torch

from cut.precision import fastest_matmul_seconds


def test_the_probe_times_both_dtypes_and_leaves_torchs_threads_as_they_were():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fastest = fastest_matmul_seconds(size=64, repeats=2)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert set(fastest) == {torch.bfloat16, torch.float32}
    assert all(0 < seconds < 1 for seconds in fastest.values()), fastest
