"""What the judging routes take and return: tasks, a person's judgment, annotators."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import Time
from cut.examples import Polarity
from store.models import TaskOutcome


class Draft(BaseModel):
    """The model judge's judgment, for a person to accept, edit or reject."""

    judge_name: str
    judge_model: str | None
    text: str
    polarity: Polarity
    spans: list[tuple[int, int]]


class TaskJudgment(BaseModel):
    id: int
    judge_name: str = Field(description="the draft's judge when accepted unchanged, else human")
    annotator: str
    text: str
    polarity: Polarity
    spans: list[tuple[int, int]]
    created_at: Time


class TaskOut(BaseModel):
    id: int
    round: int
    generation_id: int
    instruction: str
    answer: str
    finish_reason: str
    draft: Draft | None = Field(description="judge kind review: the model judge's draft")
    claimed_by: str | None = Field(description="the annotator judging it now")
    lease_until: Time | None = Field(description="when it returns to the queue unless judged")
    skips: int = Field(description="times it was given back")
    outcome: TaskOutcome | None = Field(description="null while open")
    done_by: str | None
    done_at: Time | None
    judgment: TaskJudgment | None


class JudgmentIn(BaseModel):
    """A person's judgment of the task's answer. For a review task, the draft sent back
    unchanged is an acceptance; anything else is the person's own judgment."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(
        min_length=1,
        max_length=20_000,
        pattern=r"^[^\x00]*[^\s\x00][^\x00]*$",
        description="the judgment, in words",
    )
    polarity: Polarity = Field(description="negative: the answer has a fault to unlearn")
    spans: list[tuple[int, int]] = Field(
        [],
        max_length=100,
        description="[start, end) character ranges of the answer the "
        "judgment faults (selected in the dashboard)",
    )


class AnnotatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\s\x00]([^\x00]*[^\s\x00])?$")


class AnnotatorToken(BaseModel):
    name: str
    token: str = Field(description="shown once: only its sha256 is stored")


class Me(BaseModel):
    role: Literal["annotator"] = "annotator"
    name: str
