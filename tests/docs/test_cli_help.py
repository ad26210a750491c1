"""`cutloop --help` and every command's help read well at 80 columns: nothing wider,
each command's summary one line (what listings show), and no prose line broken where
the docstring happened to wrap."""

from __future__ import annotations

import inspect
import itertools

import click
import pytest
import typer.main
from typer.testing import CliRunner

from api.cli import app

WIDTH = 80


def _commands(group: click.Command, path: tuple[str, ...] = ()):
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from _commands(command, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "cutloop")
def test_help_fits_80_columns_and_flows(path):
    text = _help(path)
    wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not wide, f"wider than {WIDTH}: {wide[0]!r}"
    # a docstring line break kept in the output leaves a short line mid-sentence
    lines = [line.strip() for line in text.splitlines()]
    for line, after in itertools.pairwise(lines):
        if line and after and not line.startswith(("│", "╭", "╰", "Usage")):
            short = len(line) < WIDTH - 30 and after[:1].islower()
            assert not short, f"a sentence breaks after {line!r}"


@pytest.mark.parametrize("path,command", COMMANDS[1:], ids=[" ".join(p) for p, _ in COMMANDS[1:]])
def test_each_summary_is_one_line(path, command):
    summary = inspect.cleandoc(command.help or "").split("\n\n")[0]
    assert summary and "\n" not in summary, f"{' '.join(path)}: {summary!r}"
