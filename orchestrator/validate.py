"""What a campaign is checked for before Ray starts (`cutloop validate`, `cutloop run`,
`POST /campaigns`): every file it names, whether its judge and annotator can judge its
instructions, its model, and the trainer's memory budget against the estimate for its
settings. A problem is one line that names the setting,
file or value; the plan says what would run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cut.datafile import DataFileError
from orchestrator.config import CampaignConfig
from orchestrator.instructions import eval_items, train_instructions
from orchestrator.judgeability import judging_problems
from orchestrator.launcher import memory_requests
from orchestrator.models import BUNDLED_MODELS, bundled_directory
from orchestrator.tracking import missing_trackers


@dataclass(frozen=True)
class Problem:
    setting: str  # dotted path of the campaign setting at fault, e.g. trainer.memory_gb
    message: str

    def __str__(self) -> str:
        return f"{self.setting}: {self.message}"

    @classmethod
    def parse(cls, line: str) -> Problem:
        """A problem written as "setting: message", as orchestrator.judgeability writes."""
        setting, message = line.split(": ", 1)
        return cls(setting, message)


@dataclass
class Review:
    """A campaign's problems (none: it may start) and its plan, line by line."""

    config: CampaignConfig
    problems: list[Problem] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)


def review_campaign(config: CampaignConfig, home: Path | None = None) -> Review:
    """`home`: where the campaign will run (its bundled models); default $CUTLOOP_HOME."""
    review = Review(config)
    _instructions(config, review)
    _eval_set(config, review)
    if not review.problems:  # the files read: can the judge and annotator judge them?
        review.problems += map(Problem.parse, judging_problems(config))
    review.problems += map(Problem.parse, missing_trackers(config.tracking))
    policy = _policy(config, review, home)
    if policy is not None:
        _training_memory(config, policy, review)
    review.plan += [f"{setting}: {gb:g} GB" for setting, gb in memory_requests(config).items()]
    return review


def _instructions(config: CampaignConfig, review: Review) -> None:
    source = config.instructions
    if source.kind == "hf":  # read from the hub at start: nothing to check offline
        review.plan.append(f"instructions: dataset {source.dataset} (read when it starts)")
        return
    try:
        count = len(train_instructions(source))
    except DataFileError as error:
        review.problems.append(Problem("instructions", str(error)))
        return
    review.plan.append(f"instructions: {count} ({source.kind}), {config.prompts_per_round} a round")


def _eval_set(config: CampaignConfig, review: Review) -> None:
    try:
        count = len(eval_items(config.evaluation))
    except DataFileError as error:
        review.problems.append(Problem("evaluation", str(error)))
        return
    review.plan.append(
        f"evaluation: {count} instructions ({config.evaluation.eval_set}), "
        f"annotator {config.evaluation.annotator}"
    )


def _policy(config: CampaignConfig, review: Review, home: Path | None) -> Path | None:
    """The policy's directory when it is on this machine (a bundled model not yet fetched
    is fetched at start, a hub id is downloaded then)."""
    name = config.policy
    if name in BUNDLED_MODELS:
        directory = bundled_directory(name, home)
        if directory is None:
            review.plan.append(f"policy: bundled {name}, fetched when the campaign starts")
        return directory
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            review.problems.append(Problem("policy", f"{name} has no config.json (not a model)"))
            return None
        return path
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        review.problems.append(Problem("policy", f"no model directory at {name}"))
    else:
        review.plan.append(f"policy: hub id {name}, downloaded when the campaign starts")
    return None


def _training_memory(config: CampaignConfig, policy: Path, review: Review) -> None:
    """A trainer on this machine's CPU (a local Ray, no GPU) must hold the estimate for
    its settings within its budget: the test a round applies at build, made up front.
    A cluster's trainer may have a GPU, where the budget is not checked."""
    import torch

    from orchestrator.training_fit import memory_shortfall, training_memory

    review.plan.append(f"policy: {policy}")
    budget = config.trainer.memory_gb
    if config.ray_address is not None or torch.cuda.is_available():
        return
    needed = training_memory(str(policy), config.cut).total_gb
    shortfall = memory_shortfall(needed, config.cut, budget)
    if shortfall is not None:
        review.problems.append(Problem("trainer.memory_gb", shortfall))
        return
    review.plan.append(f"training memory: ~{needed:.1f} GB estimated, trainer.memory_gb {budget:g}")
