"""Checking a checkpoint before any engine swaps to it."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open

from workers.engine import SwapError


def checked_weight_files(checkpoint: Path, expected: dict[str, tuple[int, ...]]) -> list[Path]:
    """The checkpoint's safetensors files, after checking that every file opens and that
    names and shapes match `expected` (the serving model's). Raises SwapError saying why."""
    files = sorted(Path(checkpoint).glob("*.safetensors"))
    if not files:
        raise SwapError(f"{checkpoint}: no .safetensors files")
    found: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for name in handle.keys():  # noqa: SIM118  (safe_open has no __iter__)
                    found[name] = tuple(handle.get_slice(name).get_shape())
        except Exception as error:  # a truncated or foreign file
            raise SwapError(f"{file}: unreadable safetensors ({error})") from None
    missing = sorted(set(expected) - set(found))
    if missing:
        raise SwapError(
            f"{checkpoint}: missing tensors {missing[:3]}{'...' if len(missing) > 3 else ''}"
        )
    wrong = [n for n in expected if found[n] != expected[n]]
    if wrong:
        name = wrong[0]
        raise SwapError(f"{checkpoint}: {name} has shape {found[name]}, expected {expected[name]}")
    return files
