"""Weights received as safetensors files' bytes (through Ray's object store: read-only,
shared with the store), read as tensors in place. The engine then copies each tensor
once, into its own parameters: no file is written and nothing passes through this
process's heap on the way."""

from __future__ import annotations

import json
import warnings

import numpy as np
import torch

from workers.engine import SwapError

DTYPES = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


def tensors_in(name: str, contents: np.ndarray) -> dict[str, torch.Tensor]:
    """The tensors of one safetensors file's bytes, as views of those bytes (writers pad
    the header and order tensors so every view is aligned). SwapError naming the file
    when the bytes are not a whole safetensors file."""
    try:
        size = int.from_bytes(contents[:8].tobytes(), "little")
        header = json.loads(contents[8 : 8 + size].tobytes())
        data = contents[8 + size :]
        with warnings.catch_warnings():  # read-only memory, and only ever read
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            raw = torch.from_numpy(data)
        tensors = {}
        for key, meta in header.items():
            if key == "__metadata__":
                continue
            start, end = meta["data_offsets"]
            if end > data.size:
                raise ValueError(f"{key} ends at byte {end} of {data.size}")
            tensors[key] = raw[start:end].view(DTYPES[meta["dtype"]]).reshape(meta["shape"])
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        raise SwapError(f"{name}: unreadable safetensors ({error})") from None
    return tensors


def received_tensors(files: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint received as its files (name -> bytes)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, contents in sorted(files.items()):
        tensors |= tensors_in(name, contents)
    return tensors
