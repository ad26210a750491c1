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
    replicas: int = Field(1, ge=1, description="data-parallel engines")
    memory_gb: float = Field(4.0, gt=0, description="RAM one replica may use (declared to Ray)")
    sampling: SamplingConfig = SamplingConfig()


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
    kind: Literal["rules"] = "rules"


class OpenAIJudgeSettings(OpenAIJudgeConfig):
    kind: Literal["openai"] = "openai"


class LocalJudgeSettings(LocalJudgeConfig):
    kind: Literal["local"] = "local"


JudgeSettings = Annotated[
    RulesJudgeSettings | OpenAIJudgeSettings | LocalJudgeSettings, Field(discriminator="kind")
]


class FileInstructions(_Strict):
    kind: Literal["file"] = "file"
    path: Path = Field(description="JSON list or JSONL of objects with an 'instruction' field")


class HFInstructions(_Strict):
    kind: Literal["hf"] = "hf"
    dataset: str = Field(description="Hugging Face dataset id (needs network)")
    split: str = "train"
    field: str = "instruction"
    input_field: str | None = Field(
        None, description="appended to the instruction after a blank line when non-empty"
    )


class BuiltinInstructions(_Strict):
    kind: Literal["builtin"] = "builtin"  # the verifiable set of judge.instructions


InstructionSource = Annotated[
    FileInstructions | HFInstructions | BuiltinInstructions, Field(discriminator="kind")
]


class EvaluationSettings(_Strict):
    eval_set: Literal["builtin_held_out", "file"] = "builtin_held_out"
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
    max_instructions: int | None = Field(None, ge=1, description="evaluate on the first N")
    max_new_tokens: int = Field(256, ge=1)

    @model_validator(mode="after")
    def _known_annotator(self) -> Self:
        if self.annotator != "rules":
            annotator_config(self.annotator)  # a ValueError naming the annotator
        return self


class CampaignConfig(_Strict):
    name: str = Field(min_length=1, max_length=200)
    policy: str = Field("smollm2", description="bundled name, HF directory or HF id")
    rounds: int = Field(3, ge=0, description="0: only evaluate the policy (round 0)")
    prompts_per_round: int = Field(64, ge=1, description="unused instructions taken per round")
    commit_every: int = Field(
        64, ge=1, description="generations, judgments or eval items per store commit"
    )
    method: Method = Field(
        "cut", description="the training objective: cut, sft (positives only) or dpo (pairs)"
    )
    selection: SelectionSettings = SelectionSettings()
    fresh_each_round: bool = Field(
        False,
        description="train each round from the round-0 policy on every answer collected so "
        "far, instead of continuing from the previous round's checkpoint on its own answers",
    )
    max_failed_judgments: float = Field(
        0.2, ge=0, le=1, description="fraction of a round's answers left unjudged before it fails"
    )
    instructions: InstructionSource = BuiltinInstructions()
    generator: GeneratorSettings = GeneratorSettings()
    judge: JudgeSettings = RulesJudgeSettings()
    cut: CUTConfig = CUTConfig()
    trainer: TrainerSettings = TrainerSettings()
    placement: PlacementSettings = PlacementSettings()
    checkpoints: CheckpointSettings = CheckpointSettings()
    evaluation: EvaluationSettings = EvaluationSettings()
    seed: int = Field(
        42,
        description="the campaign's seed: generator.sampling.seed and cut.seed take it "
        "unless they are set (null sampling seed: unseeded sampling)",
    )
    ray_address: str | None = Field(None, description="None: a local Ray started on demand")

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
