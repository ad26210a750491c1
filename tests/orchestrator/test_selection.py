"""Which judged answers a round trains on."""

from types import SimpleNamespace

import pytest

from cut.examples import Polarity
from orchestrator.selection import SelectionSettings, select

POS, NEG = Polarity.POSITIVE, Polarity.NEGATIVE


def answer(prompt_id, sample_index, polarity, finish="stop", text=None):
    text = text if text is not None else "x" * (10 + sample_index)
    generation = SimpleNamespace(
        prompt_id=prompt_id, sample_index=sample_index, finish_reason=finish, text=text
    )
    return generation, SimpleNamespace(polarity=polarity), SimpleNamespace(id=prompt_id)


# prompt 1: two positives, a negative and a truncated positive; prompt 2: negatives only;
# prompt 3: a positive and a truncated negative; stored order is not sample order
ANSWERS = [
    answer(1, 1, POS), answer(1, 0, NEG), answer(2, 0, NEG), answer(1, 3, POS),
    answer(3, 0, POS), answer(2, 1, NEG), answer(1, 2, POS, "length"), answer(3, 1, NEG, "length"),
]  # fmt: skip


def kept(**settings):
    rows = select(ANSWERS, SelectionSettings(**settings))
    return [(g.prompt_id, g.sample_index) for g, _, _ in rows]


def test_truncated_answers_are_left_out_unless_asked_for():
    assert kept() == [(1, 1), (1, 0), (2, 0), (1, 3), (3, 0), (2, 1)]  # store order kept
    assert len(kept(train_on_truncated=True)) == len(ANSWERS)


def test_disagreeing_only_keeps_instructions_with_both_judgments_among_usable_answers():
    assert kept(disagreeing_only=True) == [(1, 1), (1, 0), (1, 3)]
    with_truncated = kept(disagreeing_only=True, train_on_truncated=True)
    assert {p for p, _ in with_truncated} == {1, 3}


@pytest.mark.parametrize(
    ("limit", "expected"), [(1, [(1, 1), (1, 0)]), (2, [(1, 1), (1, 0), (1, 3)])]
)
def test_positives_per_prompt_keeps_the_first_samples(limit, expected):
    assert kept(disagreeing_only=True, positives_per_prompt=limit) == expected


def test_negatives_per_prompt_keeps_the_first_negatives():
    assert kept(negatives_per_prompt=1) == [(1, 1), (1, 0), (2, 0), (1, 3), (3, 0)]
    both = kept(disagreeing_only=True, positives_per_prompt=1, negatives_per_prompt=1)
    assert both == [(1, 1), (1, 0)]


def test_short_positives_keep_each_prompts_shortest_or_those_within_the_median():
    answers = [
        answer(1, 0, POS, text="a" * 30), answer(1, 1, POS, text="a" * 10),
        answer(1, 2, NEG, text="a" * 50), answer(1, 3, POS, text="a" * 10),
        answer(2, 0, POS, text="a" * 40), answer(2, 1, NEG, text="a" * 5),
    ]  # fmt: skip

    def kept_of(mode):
        rows = select(answers, SelectionSettings(short_positives=mode))
        return [(g.prompt_id, g.sample_index) for g, _, _ in rows]

    assert kept_of("off") == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0), (2, 1)]
    # the first of prompt 1's two shortest; every negative stays
    assert kept_of("shortest") == [(1, 1), (1, 2), (2, 0), (2, 1)]
    # the median of all six lengths is 20: positives of 30 and 40 characters go
    assert kept_of("median") == [(1, 1), (1, 2), (1, 3), (2, 1)]
