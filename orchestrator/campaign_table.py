"""The per-round tables of a campaign, shown at the end of `cutloop run` and by
`cutloop status`: what each round trained on, then how each round's policy evaluates."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text

from store.summaries import RoundSummary


def _number(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _p_value(value: float | None) -> str:
    return "<0.001" if value is not None and value < 0.001 else _number(value, ".3f")


def _table(title: str | None, columns: tuple[str, ...], caption: str) -> Table:
    table = Table(title=title, caption=caption)
    for column in columns:
        table.add_column(column, justify="left" if column == "status" else "right")
    return table


def _status(r: RoundSummary) -> str:
    status = r.status.value if r.status.value != "running" else f"at {r.stage.value}"
    return f"{status}: {r.error}" if r.error else status


def training_table(title: str, rounds: list[RoundSummary]) -> Table:
    table = _table(
        title,
        ("round", "status", "prompts", "answers", "neg/pos", "failed", "steps", "loss",
         "flagged"),
        "failed: failed judge calls; flagged: Misalign tokens flagged",
    )  # fmt: skip
    for r in rounds:
        table.add_row(
            str(r.index), _status(r), str(r.prompts), str(r.generations),
            f"{r.negative}/{r.positive}", str(r.failed_calls), str(r.steps),
            _number(r.final_loss, ".3f"), _number(r.flagged_fraction, ".0%"),
        )  # fmt: skip
    return table


def _annotators(rounds: list[RoundSummary]) -> str:
    pairs = dict.fromkeys((r.annotator, r.reference) for r in rounds if r.annotator)
    return "; ".join(f"{annotator} against {reference}" for annotator, reference in pairs)


def evaluation_table(rounds: list[RoundSummary]) -> Table:
    annotators = _annotators(rounds)
    table = _table(
        f"evaluation: {annotators}" if annotators else "evaluation",
        ("round", "P-strict", "P-loose", "I-strict", "I-loose", "p(R0)", "win rate", "± SE",
         "LC", "decisive", "n", "failed", "ties", "cut", "length"),
        "P-/I-: IFEval prompt-/instruction-level accuracy, %; p(R0): exact McNemar p of "
        "P-strict against round 0; win rate: AlpacaEval's, % against the reference (ties "
        "count half); LC: length-controlled win rate; decisive: % of non-tied comparisons "
        "won; failed: comparisons the annotator could not decide (not in n); cut: % of "
        "answers cut off at max_new_tokens; length: characters per answer",
    )  # fmt: skip
    for r in rounds:
        table.add_row(
            str(r.index), _number(r.prompt_strict, ".1f"), _number(r.prompt_loose, ".1f"),
            _number(r.instruction_strict, ".1f"), _number(r.instruction_loose, ".1f"),
            _p_value(r.mcnemar_p), _number(r.win_rate, ".1f"), _number(r.standard_error, ".1f"),
            _number(r.lc_win_rate, ".1f"), _number(r.decisive_win_rate, ".1f"),
            _number(r.n, "d"), _number(r.failed, "d"), _number(r.ties, "d"),
            _number(r.truncated, ".0f"), _number(r.avg_length, ".0f"),
        )  # fmt: skip
    return table


def rounds_table(title: str, rounds: list[RoundSummary]) -> Group:
    """Both tables, one after the other: 24 columns side by side would not fit a terminal;
    only the evaluation while nothing was trained (an evaluation-only campaign)."""
    if all(r.index == 0 for r in rounds):
        return Group(Text(title, style="bold"), evaluation_table(rounds))
    return Group(training_table(title, rounds), evaluation_table(rounds))
