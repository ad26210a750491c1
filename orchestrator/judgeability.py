"""Whether a campaign's judge and annotator can judge its instructions, known before Ray
starts and before anything is stored: a rule judge given instructions without known
constraints would only store failed judgments, round after round. Reads the instruction
files (an unknown IFEval id refuses the campaign too); imports neither torch nor Ray."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cut.datafile import DataFileError
from orchestrator.instructions import eval_items, read_instruction_file
from orchestrator.judging import model_judge

if TYPE_CHECKING:
    from orchestrator.config import CampaignConfig

IFEVAL_FIELDS = "IFEval's instruction_id_list and kwargs"
JUDGE_FIX = (
    "use instructions: {kind: builtin}, or IFEval records (prompt, instruction_id_list, "
    "kwargs) in the file, or judge: {kind: openai} or {kind: local}"
)
ANNOTATOR_FIX = (
    "use evaluation.eval_set: builtin_held_out, or IFEval records in the file, or an "
    "alpaca_eval annotator such as evaluation.annotator: alpaca_eval_gpt4"
)


def _judge_problems(config: CampaignConfig) -> list[str]:
    source = config.instructions
    judge = model_judge(config.judge)  # people judge anything; a review's drafter may not
    rules = judge is not None and judge.kind == "rules" and config.rounds > 0  # 0: none judged
    if source.kind == "hf":
        if rules:
            return [
                "judge: {kind: rules} knows no constraints for instructions: {kind: hf} "
                f"({source.dataset}); {JUDGE_FIX}"
            ]
        return []
    if source.kind != "file":
        return []
    try:
        read = read_instruction_file(source.path)
    except DataFileError as error:
        return [f"instructions.path: {error}"]
    plain = [i.label for i in read if i.record is None]
    if rules and plain:
        return [
            f"judge: {{kind: rules}} cannot judge {source.path}: {len(plain)} of its "
            f"{len(read)} records have no {IFEVAL_FIELDS} (the first: {plain[0]}); {JUDGE_FIX}"
        ]
    return []


def _annotator_problems(config: CampaignConfig) -> list[str]:
    settings = config.evaluation
    if settings.eval_set != "file":
        return []
    try:
        items = eval_items(settings)
    except DataFileError as error:
        return [f"evaluation.path: {error}"]
    plain = sum(i.constraints is None for i in items)
    if settings.annotator == "rules" and plain:
        return [
            f"evaluation.annotator: rules cannot compare answers to {settings.path}: {plain} "
            f"of the {len(items)} records it evaluates have no {IFEVAL_FIELDS}; {ANNOTATOR_FIX}"
        ]
    return []


def judging_problems(config: CampaignConfig) -> list[str]:
    """One line per reason the campaign cannot be judged, each saying what to change;
    [] when it can."""
    return _judge_problems(config) + _annotator_problems(config)
