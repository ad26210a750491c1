"""Weights received as safetensors bytes are read in place, exactly as safetensors
reads the file, and bytes that are not a whole file are refused by name."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from workers.engine import SwapError
from workers.received import received_tensors


@pytest.fixture
def weights_file(tmp_path):
    generator = torch.Generator().manual_seed(0)
    tensors = {
        "model.embed.weight": torch.randn(7, 5, generator=generator).to(torch.bfloat16),
        "model.norm.weight": torch.randn(5, generator=generator),
        "model.layers.0.mlp.weight": torch.randn(3, 5, generator=generator).half(),
        "positions": torch.arange(11),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    return path


def read_only(path) -> np.ndarray:
    contents = np.fromfile(path, dtype=np.uint8)
    contents.flags.writeable = False  # as Ray's object store hands them over
    return contents


def test_tensors_are_read_in_place_as_safetensors_reads_them(weights_file):
    contents = read_only(weights_file)
    received = received_tensors({weights_file.name: contents})
    expected = load_file(weights_file)
    assert set(received) == set(expected)
    for name, tensor in expected.items():
        assert received[name].dtype == tensor.dtype and torch.equal(received[name], tensor)
        start = received[name].data_ptr() - contents.ctypes.data
        assert 0 < start < contents.nbytes  # a view of the received bytes, not a copy


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda b: b[:-6], r"model\.\S+ ends at byte \d+ of \d+"),
        (lambda b: b[:40], "unreadable safetensors"),
        (lambda b: np.frombuffer(b"not a safetensors file at all", dtype=np.uint8), "unreadable"),
    ],
)
def test_bytes_that_are_not_a_whole_file_are_refused_by_name(weights_file, damage, reason):
    with pytest.raises(SwapError, match=rf"^shard-2\.safetensors: .*{reason}"):
        received_tensors({"shard-2.safetensors": damage(read_only(weights_file))})
