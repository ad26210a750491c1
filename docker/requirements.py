"""Print the project's requirements, and those of the extras named in argv, one per line:
an image installs them from pyproject.toml alone, in a layer that code changes keep."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    unknown = [e for e in extras if e not in optional]
    if unknown:
        named = ", ".join(unknown)
        raise SystemExit(f"{pyproject}: no extra named {named}; known: {sorted(optional)}")
    return [*project["dependencies"], *(r for extra in extras for r in optional[extra])]


if __name__ == "__main__":
    print("\n".join(requirements(Path("pyproject.toml"), sys.argv[1:])))
