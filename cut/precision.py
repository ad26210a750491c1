"""Choosing the matmul precision: bf16 autocast where it pays, fp32 otherwise.

On CUDA bf16 autocast is the norm when the GPU supports it. On CPUs it depends on the
chip: with AVX512-BF16/AMX bf16 matmuls run ~3.8x faster than fp32 (measured on the
project's machines), without them far slower (~130x on an AVX2-only EPYC); a machine
with AVX512-BF16 but no AMX ran them 1.9x slower than fp32 (2026-11-29). A short probe
decides.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time

import torch

from cut.config import Precision


def fastest_matmul_seconds(size: int = 384, repeats: int = 8) -> dict[torch.dtype, float]:
    """The least CPU time of `repeats` matmuls in bf16 and in fp32, taken in turn on one
    thread. Other processes on the cores cannot lengthen a thread's CPU time, as they
    lengthen wall time, nor stall it waiting for a preempted sibling thread: summed
    two-thread wall times picked bf16 in 15-50% of runs on two busy cores where bf16 is
    1.9x slower (bench/precision_probe.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        operands = {
            dtype: (torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype))
            for dtype in (torch.bfloat16, torch.float32)
        }
        for a, b in operands.values():
            a @ b  # warm-up: the first call initialises the kernel
        fastest = dict.fromkeys(operands, math.inf)
        for _ in range(repeats):
            for dtype, (a, b) in operands.items():
                start = time.thread_time()
                a @ b
                fastest[dtype] = min(fastest[dtype], time.thread_time() - start)
        return fastest
    finally:
        torch.set_num_threads(threads)


@functools.cache
def cpu_bf16_is_faster() -> bool:
    fastest = fastest_matmul_seconds()
    return fastest[torch.bfloat16] < fastest[torch.float32]


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if cpu_bf16_is_faster() else None
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """bf16 autocast for `dtype`, or nothing for plain fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
