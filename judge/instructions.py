"""The built-in verifiable instruction set: topics x tasks x constraints, seeded, with
disjoint train and held-out splits. Each instruction keeps its constraints, so a rule
judge can check any response to it.

Sized for a small policy that should learn from its own samples (docs/efficacy.md): short
tasks, so answers finish within the generation budget, and the constraint families
SmolLM2-135M-Instruct meets sometimes (12-75% of 24 samples each, at temperature 0.8);
families it met almost always (forbidden words, word limits, exclamation marks, capital
words, minimum length) or almost never (all lowercase or uppercase, quotation, paragraphs,
repeating the request) teach nothing here and are left out of the set, not the checkers."""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Literal

from judge.rules import (
    BulletPoints,
    Constraint,
    EndWith,
    Highlights,
    IncludeKeywords,
    KeywordFrequency,
    LetterFrequency,
    MaxSentences,
    NoCommas,
    Placeholders,
    Postscript,
    Sections,
    StartWith,
    Title,
    ValidJson,
)

TOPICS = (
    "the water cycle", "a city at night", "learning a new language", "the first day of school",
    "bees and flowers", "a lighthouse keeper", "recycling plastic", "the history of bread",
    "a rainy weekend", "electric cars", "the moon landing", "a small bakery", "mountain hiking",
    "friendship", "the importance of sleep", "a robot that paints", "winter in the north",
    "public libraries", "the ocean floor", "a chess tournament", "volcanoes", "coffee",
    "a train journey", "solar power", "a lost key", "the human heart", "street music",
    "autumn leaves", "a space station", "gardening on a balcony", "the printing press",
    "a thunderstorm", "online privacy", "a family recipe", "desert animals", "the internet",
    "bicycles in cities", "a museum visit", "time management", "honeybees", "old maps",
    "a marathon", "clean drinking water", "a jazz concert", "the northern lights",
    "a village market", "paper airplanes", "a snowy mountain cabin", "board games",
    "the life of a tree",
)  # fmt: skip
TASKS = (
    "Describe {topic} in a few sentences.", "Explain briefly why {topic} matters.",
    "Give one short piece of advice about {topic}.", "Write a short paragraph about {topic}.",
    "Write a short note to a friend about {topic}.", "Write a four-line poem about {topic}.",
)  # fmt: skip
FAMILIES = (
    MaxSentences, Postscript, Placeholders, BulletPoints, Highlights, NoCommas, Title,
    IncludeKeywords, Sections, StartWith, EndWith, ValidJson, KeywordFrequency, LetterFrequency,
)  # fmt: skip
SEED = 2024
TRAIN_SIZE, HELD_OUT_SIZE = 600, 200
Split = Literal["train", "held_out"]
# pairs of constraint groups that cannot both hold (e.g. all lowercase and "SECTION 1")
CONFLICTING_GROUPS = {
    frozenset(pair)
    for pair in (("case", "structure"), ("case", "shape"), ("json", "shape"), ("json", "structure"))
}


@dataclass(frozen=True)
class VerifiableInstruction:
    text: str
    constraints: tuple[Constraint, ...]


def _compose(rng: random.Random) -> VerifiableInstruction:
    task = rng.choice(TASKS).format(topic=rng.choice(TOPICS))
    first, second = rng.sample(FAMILIES, 2)
    kinds = [first] if rng.random() < 0.7 else [first, second]
    if len(kinds) == 2 and (
        first.group == second.group or frozenset({first.group, second.group}) in CONFLICTING_GROUPS
    ):
        kinds = [first]
    constraints = tuple(kind.sample(rng) for kind in kinds)
    text = " ".join([task, *(c.describe() for c in constraints)])
    return VerifiableInstruction(text, constraints)


@functools.cache
def builtin_instructions() -> dict[Split, tuple[VerifiableInstruction, ...]]:
    """600 train and 200 held-out instructions, no text in both; the same on every call."""
    rng = random.Random(SEED)
    unique: dict[str, VerifiableInstruction] = {}
    while len(unique) < TRAIN_SIZE + HELD_OUT_SIZE:
        instruction = _compose(rng)
        unique.setdefault(instruction.text, instruction)
    ordered = list(unique.values())
    return {"train": tuple(ordered[:TRAIN_SIZE]), "held_out": tuple(ordered[TRAIN_SIZE:])}


@functools.cache
def builtin_by_text() -> dict[str, VerifiableInstruction]:
    """Every built-in instruction (both splits) by its text: how an answer's constraints
    are found from the instruction it answers."""
    return {i.text: i for split in builtin_instructions().values() for i in split}
