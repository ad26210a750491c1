"""Campaign configuration: one YAML file, validated in one place.

Every error names the field path and the value given, e.g.
`campaigns/x.yaml: cut.lambda: Input should be greater than 0 (got -1)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cut.config import CUTConfig, Method
from judge.alpaca_eval_annotator import AlpacaEvalEndpoint, annotator_config
from judge.local_judge import LocalJudgeConfig
from judge.openai_judge import OpenAIJudgeConfig
from orchestrator.selection import SelectionSettings
from workers.engine import EngineSettings, SamplingConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorSettings(EngineSettings):
    replicas: int = Field(
        1, ge=1, description="data-parallel engines: one per GPU on GPUs; on a CPU they split "
        "the cores, so one is fastest there",
    )  # fmt: skip
    memory_gb: float = Field(
        4.0, gt=0, description="RAM one replica may use, declared to Ray so that it is placed "
        "where it fits; raise it for larger models or a larger kv_cache_gib",
    )  # fmt: skip
    sampling: SamplingConfig = Field(
        SamplingConfig(), description="how the generate stage samples answers (evaluation "
        "decodes greedily)",
    )  # fmt: skip


class TrainerSettings(_Strict):
    memory_gb: float = Field(
        8.0,
        gt=0,
        description="RAM the trainer may use (declared to Ray); on a CPU, build refuses "
        "cut settings whose estimated peak exceeds it",
    )


class PlacementSettings(_Strict):
    colocate: bool = Field(
        False,
        description="GPUs: the trainer shares generator replica 0's GPU (needs "
        "generator.gpu_memory_utilization); the engine sleeps while it trains",
    )
    ready_timeout_s: float = Field(
        300, gt=0, description="how long to wait for Ray to reserve the GPUs before failing"
    )


class CheckpointSettings(_Strict):
    keep_last: int | None = Field(
        None, ge=1, description="delete older checkpoints but the last K (None: keep all)"
    )
    keep_best: bool = Field(True, description="with keep_last: also keep the best win rate's")


class RulesJudgeSettings(_Strict):
    kind: Literal["rules"] = Field(
        "rules", description="code checks each constraint of a verifiable instruction (the "
        "builtin set); free, instant, no network; judges no other instructions",
    )  # fmt: skip


class OpenAIJudgeSettings(OpenAIJudgeConfig):
    kind: Literal["openai"] = Field(
        "openai", description="GPT-4 (the paper's judge) or any OpenAI-compatible endpoint, "
        "e.g. a vLLM server; judges any instruction",
    )  # fmt: skip


class LocalJudgeSettings(LocalJudgeConfig):
    kind: Literal["local"] = Field(
        "local", description="a causal LM loaded in the judge worker writes each judgment "
        "and a Yes/No verdict; judges any instruction",
    )  # fmt: skip


ModelJudgeSettings = Annotated[
    RulesJudgeSettings | OpenAIJudgeSettings | LocalJudgeSettings, Field(discriminator="kind")
]


class _PeopleJudge(_Strict):
    """How long the judge stage waits for people (docs/judging-by-people.md)."""

    deadline_s: float | None = Field(
        None, gt=0, description="seconds after the round's tasks are published when it moves "
        "on with what was judged; open tasks are left out and counted (None: wait for all)",
    )  # fmt: skip
    quota: int | None = Field(
        None, ge=1, description="move on once this many answers are decided (None: all)"
    )
    lease_s: float = Field(
        600, gt=0, description="how long a claimed task stays an annotator's without an "
        "answer before it returns to the queue",
    )  # fmt: skip
    poll_s: float = Field(2.0, gt=0, description="how often the stage looks at the store")


class HumanJudgeSettings(_PeopleJudge):
    kind: Literal["human"] = Field(
        "human", description="people write every judgment in the dashboard or over the "
        "API; the round waits for them",
    )  # fmt: skip


class ReviewJudgeSettings(_PeopleJudge):
    kind: Literal["review"] = Field(
        "review", description="a model judge drafts every judgment; people accept, edit or "
        "reject the drafts, and only what they approved is trained on",
    )  # fmt: skip
    draft: ModelJudgeSettings = Field(
        RulesJudgeSettings(), description="the judge that drafts: rules, openai or local"
    )


JudgeSettings = Annotated[
    RulesJudgeSettings
    | OpenAIJudgeSettings
    | LocalJudgeSettings
    | HumanJudgeSettings
    | ReviewJudgeSettings,
    Field(discriminator="kind"),
]
PeopleJudgeSettings = HumanJudgeSettings | ReviewJudgeSettings


Tracker = Literal["tensorboard", "mlflow", "wandb", "trackio"]


class TrackingSettings(_Strict):
    report_to: list[Tracker] = Field(
        [], description="experiment trackers that get every training step and every round's "
        "metrics, one run per campaign (each an optional extra: pip install 'cutloop[NAME]')",
    )  # fmt: skip
    project: str = Field(
        "cutloop", description="the wandb or trackio project, the MLflow experiment"
    )
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow's tracking server or store (None: $MLFLOW_TRACKING_URI, "
        "else a SQLite store in the campaign's directory, tracking/mlflow.db)",
    )  # fmt: skip


class FileInstructions(_Strict):
    kind: Literal["file"] = Field("file", description="your own instructions, from a file")
    path: Path = Field(
        description="JSON list or JSONL of objects with an 'instruction' field",
        examples=["data/instructions.jsonl"],
    )


class HFInstructions(_Strict):
    kind: Literal["hf"] = Field("hf", description="a dataset on the Hugging Face hub")
    dataset: str = Field(
        description="Hugging Face dataset id (needs network)", examples=["tatsu-lab/alpaca"]
    )
    split: str = Field("train", description="the dataset split to read")
    field: str = Field("instruction", description="the column holding the instruction")
    input_field: str | None = Field(
        None, description="appended to the instruction after a blank line when non-empty"
    )


class BuiltinInstructions(_Strict):
    kind: Literal["builtin"] = Field(
        "builtin", description="600 verifiable instructions (judge/instructions.py) whose "
        "constraints the rules judge checks, disjoint from the 200 held-out ones of the "
        "builtin eval set",
    )  # fmt: skip


InstructionSource = Annotated[
    FileInstructions | HFInstructions | BuiltinInstructions, Field(discriminator="kind")
]


class EvaluationSettings(_Strict):
    eval_set: Literal["builtin_held_out", "file"] = Field(
        "builtin_held_out", description="builtin_held_out: 200 verifiable instructions no "
        "round trains on, round 0's answers the reference; file: an AlpacaEval-format file "
        "at `path` (e.g. AlpacaEval's 805)",
    )  # fmt: skip
    path: Path | None = Field(
        None, description="eval_set=file: AlpacaEval's JSON (instruction, output = reference)"
    )
    annotator: str = Field(
        "rules",
        description="'rules' (constraints met), or an alpaca_eval annotator config: "
        "alpaca_eval_gpt4 (AlpacaEval 1.0), weighted_alpaca_eval_gpt4_turbo (2.0, logprobs)",
    )
    endpoint: AlpacaEvalEndpoint = Field(
        AlpacaEvalEndpoint(), description="alpaca_eval annotators: base URL, model, key, budget"
    )
    length_control: Literal["auto", "length_controlled_v1", "length_controlled_minimal"] = Field(
        "auto", description="auto: v1 (the leaderboard's) on AlpacaEval's 805, else minimal"
    )
    max_instructions: int | None = Field(
        None, ge=1, description="evaluate on the first N only (cheaper, noisier)"
    )
    max_new_tokens: int = Field(
        256, ge=1, description="longest eval answer in tokens (the share cut off is "
        "reported); raise it, e.g. to 1024, for AlpacaEval",
    )  # fmt: skip

    @model_validator(mode="after")
    def _known_annotator(self) -> Self:
        if self.annotator != "rules":
            annotator_config(self.annotator)  # a ValueError naming the annotator
        return self


class CampaignConfig(_Strict):
    name: str = Field(
        min_length=1, max_length=200, examples=["my-campaign"],
        description="the campaign in the store, the API and $CUTLOOP_HOME/campaigns/NAME; "
        "any change of settings but `rounds` needs a new name",
    )  # fmt: skip
    policy: str = Field(
        "smollm2", description="the starting model: a bundled name (smollm2), a local HF "
        "directory or a hub id",
    )  # fmt: skip
    rounds: int = Field(
        3, ge=0, description="rounds of generate, judge, train, swap, evaluate; 0: only "
        "evaluate the policy (round 0); raise it to extend a finished campaign",
    )  # fmt: skip
    prompts_per_round: int = Field(
        64, ge=1, description="unused instructions taken per round (the demo: 24 on a CPU; "
        "the paper: 1,000)",
    )  # fmt: skip
    commit_every: int = Field(
        64, ge=1, description="generations, judgments or eval items per store commit; lower "
        "it to see progress sooner, raise it for fewer writes",
    )  # fmt: skip
    method: Method = Field(
        "cut", description="the training objective: cut, sft (positives only) or dpo (pairs)"
    )
    selection: SelectionSettings = Field(
        SelectionSettings(), description="which judged answers a round trains on (docs/cut.md)"
    )
    fresh_each_round: bool = Field(
        False,
        description="train each round from the round-0 policy on every answer collected so "
        "far, instead of continuing from the previous round's checkpoint on its own answers",
    )
    max_failed_judgments: float = Field(
        0.2, ge=0, le=1, description="fraction of a round's answers left unjudged before it "
        "fails; raise it for a flaky judge",
    )  # fmt: skip
    instructions: InstructionSource = Field(
        BuiltinInstructions(), description="where each round's instructions come from"
    )
    generator: GeneratorSettings = Field(
        GeneratorSettings(), description="the engines that answer instructions"
    )
    judge: JudgeSettings = Field(RulesJudgeSettings(), description="who judges the answers")
    cut: CUTConfig = Field(
        CUTConfig(), description="the training settings (docs/cut.md); a file of these alone "
        "is what `cutloop train --config` takes",
    )  # fmt: skip
    trainer: TrainerSettings = Field(TrainerSettings(), description="the trainer's resources")
    placement: PlacementSettings = Field(
        PlacementSettings(), description="where the actors run on GPUs (docs/scaling.md)"
    )
    checkpoints: CheckpointSettings = Field(
        CheckpointSettings(), description="which merged checkpoints stay on disk"
    )
    evaluation: EvaluationSettings = Field(
        EvaluationSettings(), description="how every round, round 0 included, is scored"
    )
    tracking: TrackingSettings = Field(
        TrackingSettings(), description="experiment trackers the campaign reports to"
    )
    seed: int = Field(
        42,
        description="the campaign's seed: generator.sampling.seed and cut.seed take it "
        "unless they are set (null sampling seed: unseeded sampling)",
    )
    ray_address: str | None = Field(
        None, description="a Ray cluster to join (HOST:6379); None: $RAY_ADDRESS, else a "
        "local Ray started on demand",
    )  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _seed_what_is_not_seeded(cls, data: Any) -> Any:
        """Fill the sampling and training seeds the campaign does not set from its `seed`,
        so they are stored with it and a resumed campaign draws as it started."""
        if not isinstance(data, dict):
            return data
        seed = data.get("seed", 42)
        generator = data.get("generator", {})
        sampling = _with_default(_part(generator, "sampling"), "seed", seed)
        return {
            **data,
            "generator": _replaced(generator, "sampling", sampling),
            "cut": _with_default(data.get("cut", {}), "seed", seed),
        }

    @model_validator(mode="after")
    def _one_method(self) -> Self:
        if self.cut.method != "cut" and self.cut.method != self.method:
            raise ValueError(
                f"cut.method is {self.cut.method!r} but method is {self.method!r}: a campaign "
                "sets its training method with the top-level `method`"
            )
        return self


def _part(settings: Any, field: str) -> Any:
    """A nested part of settings given as a mapping or as a model ({} when not given)."""
    if isinstance(settings, BaseModel):
        return getattr(settings, field)
    return settings.get(field, {}) if isinstance(settings, dict) else None


def _replaced(settings: Any, field: str, value: Any) -> Any:
    if isinstance(settings, BaseModel):
        return settings.model_copy(update={field: value})
    return {**settings, field: value} if isinstance(settings, dict) else settings


def _with_default(settings: Any, field: str, value: Any) -> Any:
    """`settings` with `field` set to `value` unless it is given (invalid input is left
    for validation to name)."""
    given = (
        settings.model_fields_set if isinstance(settings, BaseModel)
        else settings if isinstance(settings, dict) else None
    )  # fmt: skip
    return settings if given is None or field in given else _replaced(settings, field, value)


def same_campaign(stored: dict, config: dict) -> bool:
    """The same campaign, perhaps with more rounds asked for. The stored settings are
    read through today's model first: a setting added since they were stored takes its
    default on both sides."""
    try:
        current = CampaignConfig.model_validate(stored).model_dump(mode="json", by_alias=True)
    except ValidationError:
        return False
    return {**current, "rounds": None} == {**config, "rounds": None}


class CampaignConfigError(ValueError):
    pass


def describe_errors(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'campaign'}: {e['msg']} (got {e.get('input')!r})"
        for e in error.errors()
    )


def load_campaign(path: str | Path) -> CampaignConfig:
    path = Path(path)
    try:
        raw: Any = yaml.safe_load(path.read_text())
    except OSError as error:
        raise CampaignConfigError(f"{path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise CampaignConfigError(f"{path}: invalid YAML ({error})") from None
    if not isinstance(raw, dict):
        raise CampaignConfigError(f"{path}: expected a mapping of campaign settings")
    try:
        return CampaignConfig.model_validate(raw)
    except ValidationError as error:
        raise CampaignConfigError(f"{path}: {describe_errors(error)}") from None
