"""Choosing the matmul precision: bf16 autocast where it pays, fp32 otherwise.

On CUDA bf16 autocast is the norm when the GPU supports it. On CPUs it depends on the
chip: with AVX512-BF16/AMX bf16 matmuls run ~3.8x faster than fp32 (measured on the
project's machines), without them far slower (~130x on an AVX2-only EPYC). A short
probe decides.
"""

from __future__ import annotations

import contextlib
import functools
import time

import torch

from cut.config import Precision


def _matmul_seconds(dtype: torch.dtype, size: int = 384, repeats: int = 4) -> float:
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up: first call initialises the kernel
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return time.perf_counter() - start


@functools.cache
def cpu_bf16_is_faster() -> bool:
    return _matmul_seconds(torch.bfloat16) < _matmul_seconds(torch.float32)


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
