"""Which judged answers a round trains on: complete answers (truncated ones only when
asked), optionally only instructions whose samples disagree, at most so many positives
and negatives per instruction, and optionally only short positives, so that training
does not reward length (the positives that meet a constraint tend to be longer)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cut.examples import Polarity

Row = TypeVar("Row", bound=tuple)  # (Generation, Judgment, Prompt)
ShortPositives = Literal["off", "shortest", "median"]


class SelectionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    train_on_truncated: bool = Field(
        False, description="train on answers cut off at max_new_tokens (they get an EOS)"
    )
    disagreeing_only: bool = Field(
        False,
        description="keep only instructions whose usable answers got both a positive and a "
        "negative judgment (with several samples per prompt: where the policy can learn "
        "what made the difference)",
    )
    positives_per_prompt: int | None = Field(
        None, ge=1, description="keep at most this many positive answers per instruction "
        "(1: best-of-n), in sample order; None keeps all (cut.align_p_ratio still applies)",
    )  # fmt: skip
    negatives_per_prompt: int | None = Field(
        None, ge=1, description="keep at most this many negative answers per instruction, "
        "in sample order; None keeps all",
    )  # fmt: skip
    short_positives: ShortPositives = Field(
        "off", description="off: positives of any length; shortest: only each instruction's "
        "shortest positive; median: only positives no longer (in characters) than the median "
        "of the usable answers",
    )  # fmt: skip


def cut_off(generation) -> bool:
    """Whether the answer stopped at max_new_tokens rather than at its own end."""
    return generation.finish_reason == "length"


def truncated_left_out(judged: Sequence[Row], settings: SelectionSettings) -> int:
    """How many of `judged` `select` leaves out for being cut off."""
    return 0 if settings.train_on_truncated else sum(cut_off(row[0]) for row in judged)


def drop_long_positives(usable: list[Row], mode: ShortPositives) -> list[Row]:
    """`usable` without the positives `mode` finds too long (see SelectionSettings); the
    negatives all stay, so an instruction's samples still disagree or not as before."""
    if mode == "off" or not usable:
        return usable
    if mode == "median":
        limit = statistics.median(len(g.text) for g, _, _ in usable)
        return [r for r in usable if r[1].polarity != Polarity.POSITIVE or len(r[0].text) <= limit]
    shortest: dict[int, Row] = {}
    for row in usable:  # the first of equally short ones, in store order
        generation, judgment, _ = row
        best = shortest.get(generation.prompt_id)
        if judgment.polarity == Polarity.POSITIVE and (
            best is None or len(generation.text) < len(best[0].text)
        ):
            shortest[generation.prompt_id] = row
    kept = {id(row) for row in shortest.values()}
    return [r for r in usable if r[1].polarity != Polarity.POSITIVE or id(r) in kept]


def select(judged: Sequence[Row], settings: SelectionSettings) -> list[Row]:
    """`judged` rows (generation, judgment, prompt) in store order -> the kept ones, in
    the same order."""
    usable = [row for row in judged if settings.train_on_truncated or not cut_off(row[0])]
    usable = drop_long_positives(usable, settings.short_positives)
    polarities: dict[int, set[Polarity]] = defaultdict(set)
    for generation, judgment, _ in usable:
        polarities[generation.prompt_id].add(judgment.polarity)
    limits = {
        Polarity.POSITIVE: settings.positives_per_prompt,
        Polarity.NEGATIVE: settings.negatives_per_prompt,
    }
    kept, seen = [], defaultdict(int)
    for row in sorted(usable, key=lambda r: (r[0].prompt_id, r[0].sample_index)):
        generation, judgment, _ = row
        if settings.disagreeing_only and len(polarities[generation.prompt_id]) < 2:
            continue
        seen[generation.prompt_id, judgment.polarity] += 1
        limit = limits[judgment.polarity]
        if limit is not None and seen[generation.prompt_id, judgment.polarity] > limit:
            continue
        kept.append(row)
    order = {id(row): i for i, row in enumerate(judged)}
    return sorted(kept, key=lambda r: order[id(r)])
