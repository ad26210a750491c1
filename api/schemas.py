"""What the API returns, one pydantic model per resource (the OpenAPI schema is built
from these)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, computed_field

from cut.examples import Polarity
from judge.base import JudgmentStatus
from store.models import CampaignStatus, CheckpointKind, RoundStatus, Stage, as_utc

Item = TypeVar("Item")


# SQLite hands back the UTC times the store wrote without their zone
Time = Annotated[datetime, AfterValidator(as_utc)]


class Problem(BaseModel):
    """An error, naming the field, id or value at fault."""

    detail: str


class InvalidInput(BaseModel):
    """Input that failed validation, as FastAPI reports it: where (`loc`) and why."""

    detail: list[dict[str, Any]]


WHY = {
    400: "the body is not JSON (or not UTF-8)",
    401: "the bearer token is missing or wrong",
    403: "the token is an annotator's: it judges answers and does nothing else",
    404: "no such campaign, round, answer or task",
    409: "the campaign's or the task's state does not allow it",
    422: "invalid input",
}


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these error codes."""
    return {code: {"model": InvalidInput if code == 422 else Problem, "description": WHY[code]}
            for code in codes}  # fmt: skip


class _Read(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Page(BaseModel, Generic[Item]):
    """A page of a list, cursor-paginated: ask again with `after=last_id`."""

    object: Literal["list"] = "list"
    data: list[Item]
    has_more: bool
    first_id: int | None
    last_id: int | None


class CampaignOut(_Read):
    name: str
    status: CampaignStatus
    rounds: int = Field(description="rounds asked for (round 0 evaluates the start)")
    rounds_done: int = Field(description="training rounds done (round 0 not counted)")
    current_round: int | None = Field(description="the first round not done")
    current_stage: Stage | None
    queue_position: int | None = Field(description="1: next to start; None: not queued")
    error: str | None = Field(description="why it failed outside its rounds, one line")
    waiting: str | None = Field(
        description='while people judge the current round: "waiting for judgments: 17 of 96 done"'
    )
    created_at: Time
    updated_at: Time
    config: dict[str, Any] = Field(description="as validated; names of key variables only")


class LaunchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    extra_rounds: int = Field(0, ge=0, le=1000, description="rounds to add before launching")


class StageTiming(_Read):
    stage: Stage
    started_at: Time
    finished_at: Time | None
    seconds: float | None


class StepOut(_Read):
    step: int
    loss: float
    mle_loss: float
    unlikelihood_loss: float
    n_flagged: int
    flagged_fraction: float
    tokens_per_s: float
    learning_rate: float
    grad_norm: float


class CheckpointOut(_Read):
    version: int
    kind: CheckpointKind
    location: str
    sha256: str
    parent_version: int | None
    created_at: Time


class RoundOut(_Read):
    index: int
    status: RoundStatus
    stage: Stage
    error: str | None
    prompts: int
    generations: int
    negative: int
    positive: int
    failed_calls: int
    steps: int
    final_loss: float | None
    flagged_fraction: float | None
    annotator: str | None
    reference: str | None
    win_rate: float | None
    standard_error: float | None
    lc_win_rate: float | None
    lc_standard_error: float | None
    n: int | None
    failed: int | None
    prompt_strict: float | None
    tasks: int = Field(
        description="answers published for people to judge (judge kind human or review)"
    )
    tasks_done: int = Field(
        description="tasks judged, or whose draft was accepted, edited or rejected"
    )
    tasks_expired: int = Field(
        description="tasks still open when the round moved on (deadline or quota): never trained on"
    )
    drafts_accepted: float | None = Field(
        description="of the drafts people decided on, the fraction accepted unchanged"
    )

    @computed_field(description="95% Wilson interval of prompt_strict over the round's "
                    "evaluated items (n + failed), percent")  # fmt: skip
    @property
    def prompt_strict_ci95(self) -> tuple[float, float] | None:
        from orchestrator.evaluation import wilson_interval95

        items = (self.n or 0) + (self.failed or 0)
        if self.prompt_strict is None or items == 0:
            return None
        return wilson_interval95(self.prompt_strict, items)


class RoundDetail(RoundOut):
    error_detail: str | None
    stages: list[StageTiming]
    training_steps: list[StepOut]
    checkpoint: CheckpointOut | None


class EvaluationRow(_Read):
    """Every metric the evaluate stage stores for one round."""

    round: int
    eval_set: str
    annotator: str
    annotator_version: str | None
    reference: str
    win_rate: float | None
    standard_error: float | None
    discrete_win_rate: float | None
    lc_win_rate: float | None
    lc_standard_error: float | None
    lc_glm: str | None
    lc_missing: str | None
    n: int | None
    ties: int | None
    failed: int | None
    avg_length: float | None
    decisive_win_rate: float | None
    prompt_strict: float | None
    prompt_loose: float | None
    instruction_strict: float | None
    instruction_loose: float | None
    truncated: float | None
    mcnemar_b: int | None
    mcnemar_c: int | None
    mcnemar_p: float | None
    finished_at: Time | None


class JudgmentOut(_Read):
    id: int
    generation_id: int
    instruction: str
    answer: str
    finish_reason: str
    judge_name: str
    judge_model: str | None
    status: JudgmentStatus
    polarity: Polarity | None
    text: str | None
    spans: list[tuple[int, int]] | None = Field(
        description="[start, end) character ranges of the answer the judgment faults; [] "
        "none located; null for judgments stored before spans were recorded"
    )
    annotator: str | None = Field(
        description="the person who wrote or approved it; null for a judge's own judgment"
    )
    error: str | None
    latency_s: float | None
    created_at: Time


class Segment(BaseModel):
    """A piece of the answer: one token when flagged, else a run of unflagged text."""

    text: str
    flagged: bool
    ratio: float | None = Field(None, description="p_al / p_mis at a flagged token")


class FlagReport(BaseModel):
    round: int = Field(description="the round whose training flagged these tokens")
    flagged: int
    positions: list[int]
    ratios: list[float]
    segments: list[Segment] | None = Field(
        description="the answer cut at its flagged tokens; None when the policy's "
        "tokenizer cannot be loaded here"
    )


class AnswerOut(BaseModel):
    generation_id: int
    round: int
    instruction: str
    text: str
    finish_reason: str
    policy_version: int
    prompt_tokens: int
    completion_tokens: int
    judgments: list[JudgmentOut]
    flagged_tokens: list[FlagReport]


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: str
    ray: str
    version: str


class Progress(BaseModel):
    """One event of a campaign's stream."""

    status: CampaignStatus
    round: int | None
    stage: str | None
    done: int = 0
    total: int = 0
    loss: float | None = None
    flagged: float | None = None
    win_rate: float | None = None
    waiting: str | None = Field(
        None, description='while people judge: "waiting for judgments: 17 of 96 done"'
    )
