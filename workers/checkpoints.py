"""Checking a checkpoint before any engine swaps to it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open

from workers.engine import ADAPTER_CONFIG, SwapError


def checked_adapter(adapter: Path, max_rank: int | None) -> None:
    """A peft LoRA directory this engine can serve: readable config and weights, and a
    rank within the engine's limit."""
    if max_rank is None:
        raise SwapError(f"{adapter}: this engine was started without LoRA (max_lora_rank)")
    try:
        rank = json.loads((Path(adapter) / ADAPTER_CONFIG).read_text())["r"]
    except (OSError, ValueError, KeyError) as error:
        raise SwapError(f"{adapter}: unreadable {ADAPTER_CONFIG} ({error})") from None
    if rank > max_rank:
        raise SwapError(f"{adapter}: LoRA rank {rank} exceeds max_lora_rank {max_rank}")
    checked_weight_files(adapter, expected={})


def tensor_shapes(files: list[Path]) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the safetensors files (headers only)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118  (safe_open has no __iter__)
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


def tensors_of(model: Path, wanted: Callable[[str], bool]) -> dict[str, torch.Tensor]:
    """The tensors of a model directory's safetensors files whose names are `wanted`."""
    found: dict[str, torch.Tensor] = {}
    for file in sorted(Path(model).glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as handle:
            found |= {n: handle.get_tensor(n) for n in handle.keys() if wanted(n)}  # noqa: SIM118
    return found


def checked_weight_files(checkpoint: Path, expected: dict[str, tuple[int, ...]]) -> list[Path]:
    """The checkpoint's safetensors files, after checking that every file opens and that
    names and shapes match `expected` (the serving model's). Raises SwapError saying why."""
    files = sorted(Path(checkpoint).glob("*.safetensors"))
    if not files:
        raise SwapError(f"{checkpoint}: no .safetensors files")
    found: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            found |= tensor_shapes([file])
        except Exception as error:  # a truncated or foreign file
            raise SwapError(f"{file}: unreadable safetensors ({error})") from None
    checked_shapes(str(checkpoint), found, expected)
    return files


def checked_shapes(
    source: str, found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]
) -> None:
    """A whole set of weights (name -> shape) has every tensor `expected`, each with its
    shape; else SwapError naming `source` and what is wrong."""
    missing = sorted(set(expected) - set(found))
    if missing:
        raise SwapError(
            f"{source}: missing tensors {missing[:3]}{'...' if len(missing) > 3 else ''}"
        )
    wrong = [n for n in expected if found[n] != expected[n]]
    if wrong:
        name = wrong[0]
        raise SwapError(f"{source}: {name} has shape {found[name]}, expected {expected[name]}")


def checked_whole(tensors: dict, expected: dict[str, tuple[int, ...]], source: str) -> None:
    """A whole set of weights in memory (name -> tensor), checked as `checked_shapes`."""
    checked_shapes(source, {n: tuple(t.shape) for n, t in tensors.items()}, expected)


def checked_tensors(tensors: dict, expected: dict[str, tuple[int, ...]]) -> None:
    """New values sent for some of the served model's tensors: its names, its shapes."""
    unknown = sorted(set(tensors) - set(expected))
    if unknown:
        raise SwapError(f"the served model has no tensor {unknown[0]}")
    for name, shape in expected.items():
        if name in tensors and tuple(tensors[name].shape) != shape:
            raise SwapError(f"{name} has shape {tuple(tensors[name].shape)}, expected {shape}")
