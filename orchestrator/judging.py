"""The campaign's judge and pairwise annotator, built from its settings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from judge.base import Judge
from judge.instructions import VerifiableInstruction
from judge.pairwise import RulePairwiseAnnotator
from orchestrator.config import (
    EvaluationSettings,
    JudgeSettings,
    ModelJudgeSettings,
    PeopleJudgeSettings,
)
from store.results import PEOPLE

JUDGE_CACHE = "judge-cache.jsonl"
JUDGE_SPENDING = "judge-spending.jsonl"


def by_people(settings: JudgeSettings) -> PeopleJudgeSettings | None:
    """The settings of a judge whose judgments people write or approve, else None."""
    return settings if settings.kind in ("human", "review") else None  # type: ignore[return-value]


def model_judge(settings: JudgeSettings) -> ModelJudgeSettings | None:
    """The model or rule judge that runs in the judge worker: the judge itself, a
    review's drafting judge, or None when people write every judgment."""
    if settings.kind == "human":
        return None
    return settings.draft if settings.kind == "review" else settings  # type: ignore[union-attr]


def judge_name(settings: JudgeSettings) -> str:
    """Whose judgments a round trains on: a judge's name, or PEOPLE (any judgment a
    person wrote or approved)."""
    if by_people(settings) is not None:
        return PEOPLE
    return "rules" if settings.kind == "rules" else settings.name  # type: ignore[union-attr]


def make_judge(
    settings: ModelJudgeSettings, campaign_dir: Path, known: Sequence[VerifiableInstruction]
) -> Judge:
    """The rule judge checks the instructions whose constraints are `known`. Paid judges
    keep an append-only cache in the campaign's directory, so a round restarted after a
    crash finds every judgment it already paid for, and a record of their spending, so
    the budget holds across restarts."""
    if settings.kind == "rules":
        from judge.rule_judge import RuleJudge

        return RuleJudge(known)
    if settings.kind == "openai":
        from judge.cache import JudgmentCache
        from judge.openai_judge import OpenAIJudge, OpenAIJudgeConfig
        from judge.spending import Spending

        config = OpenAIJudgeConfig.model_validate(settings.model_dump(exclude={"kind"}))
        return OpenAIJudge(
            config,
            JudgmentCache(campaign_dir / JUDGE_CACHE),
            Spending(campaign_dir / JUDGE_SPENDING),
        )
    from judge.local_judge import LocalJudge, LocalJudgeConfig

    return LocalJudge(LocalJudgeConfig.model_validate(settings.model_dump(exclude={"kind"})))


def make_annotator(
    settings: EvaluationSettings, campaign_dir: Path, known: Sequence[VerifiableInstruction]
):
    """The rule annotator compares by the constraints `known`. AlpacaEval's annotators
    keep an append-only cache of their replies in the campaign's directory, so a resumed
    evaluation pays for no annotation twice, and a record of their spending, so the
    endpoint's budget holds across restarts."""
    if settings.annotator == "rules":
        return RulePairwiseAnnotator(known)
    from judge.alpaca_eval_annotator import (
        ANNOTATION_CACHE,
        ANNOTATION_SPENDING,
        AlpacaEvalAnnotator,
    )
    from judge.spending import Spending

    return AlpacaEvalAnnotator(
        settings.annotator,
        settings.endpoint,
        campaign_dir / ANNOTATION_CACHE,
        Spending(campaign_dir / ANNOTATION_SPENDING),
    )
