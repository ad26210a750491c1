"""The per-round table of a campaign, shown at the end of `cutloop run` and by
`cutloop status`."""

from __future__ import annotations

from rich.table import Table

from store.summaries import RoundSummary


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def rounds_table(title: str, rounds: list[RoundSummary]) -> Table:
    table = Table(title=title)
    for column in ("round", "status", "prompts", "answers", "neg/pos", "failed", "steps",
                   "loss", "flagged", "win rate", "± SE", "n", "ties", "length"):  # fmt: skip
        table.add_column(column, justify="left" if column == "status" else "right")
    for r in rounds:
        status = r.status.value if r.status.value != "running" else f"at {r.stage.value}"
        if r.error:
            status += f": {r.error}"
        table.add_row(
            str(r.index), status, str(r.prompts), str(r.generations),
            f"{r.negative}/{r.positive}", str(r.failed_calls), str(r.steps),
            _number(r.final_loss, ".3f"), _number(r.flagged_fraction, ".0%"),
            _number(r.win_rate, ".1f"), _number(r.standard_error, ".1f"), _number(r.n, "d"),
            _number(r.ties, "d"), _number(r.avg_length, ".0f"),
        )  # fmt: skip
    table.caption = (
        "failed: failed judge calls; flagged: Misalign tokens flagged; win rate: % against "
        "the reference (ties count half); length: characters per eval answer"
    )
    return table
