"""Live progress for long work, on stderr so stdout stays for results."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

stderr_console = Console(stderr=True)


def training_progress() -> Progress:
    return Progress(
        TextColumn("[bold]CUT"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  flagged {task.fields[flagged]:.1%}"),
        TextColumn("{task.fields[tokens_per_s]:.0f} tok/s"),
        TimeRemainingColumn(),
        console=stderr_console,
    )


def campaign_progress() -> Progress:
    """One line: round, stage, its progress and the latest loss and win rate."""
    return Progress(
        TextColumn("[bold]round {task.fields[round]}/{task.fields[rounds]}"),
        TextColumn("{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        console=stderr_console,
    )


def stdout_console() -> Console:
    """The terminal's width, or a width that fits the round table when piped."""
    console = Console()
    return console if console.is_terminal else Console(width=140)
