"""The length-controlled win rate is alpaca_eval's: the same numbers as its own
`get_length_controlled_winrate` on the same annotations. alpaca_eval reads a table from
the hub for that; the tests give it one in a local hub cache, offline (`local_hub`)."""

import random

import pytest

from judge.alpaca_eval_annotator import alpaca_eval
from orchestrator.length_control import (
    Annotation,
    choose_glm,
    length_controlled,
)

N = 40


def annotations(seed: int = 0, n: int = N) -> list[Annotation]:
    """Longer answers win more often, as annotators tend to prefer them."""
    rng = random.Random(seed)
    items = []
    for position in range(n):
        output, reference = rng.randint(20, 900), rng.randint(20, 900)
        p_win = 0.8 if output > reference else 0.3
        preference = (
            rng.choice([1.0, 2.0]) if rng.random() < 0.1 else (2.0 if rng.random() < p_win else 1.0)
        )
        if position % 13 == 5:
            preference = None  # a failed annotation
        items.append(Annotation(position, preference, "o" * output, "r" * reference))
    return items


def frame(items: list[Annotation]):
    import pandas as pd

    return pd.DataFrame(
        {
            "index": [a.position for a in items],
            "preference": [a.preference for a in items],
            "output_1": [a.reference for a in items],
            "output_2": [a.output for a in items],
            "generator_1": "reference",
            "generator_2": "policy",
            "annotator": "test",
        }
    )


@pytest.mark.parametrize("glm", ["length_controlled_minimal", "length_controlled_v1"])
def test_the_lc_win_rate_is_alpaca_evals(local_hub, glm):
    items = annotations()
    ours = length_controlled(items, glm)
    theirs = alpaca_eval().metrics.get_length_controlled_winrate(
        frame(items), glm_name=glm, save_weights_dir=None
    )
    assert ours.missing is None and ours.glm == glm
    assert ours.win_rate == pytest.approx(theirs["length_controlled_winrate"], abs=1e-9)
    assert ours.standard_error == pytest.approx(theirs["lc_standard_error"], abs=1e-9)


def test_length_control_moves_the_win_rate_away_from_length(local_hub):
    """Wins here come from longer answers: without the length advantage fewer remain."""
    items = annotations()
    raw = sum(a.preference == 2.0 for a in items) / sum(a.preference is not None for a in items)
    assert length_controlled(items, "length_controlled_minimal").win_rate != pytest.approx(
        100 * raw, abs=0.5
    )


def test_the_minimal_glm_needs_no_hub():
    # no local hub cache here: alpaca_eval's own featurizer would try to download
    assert length_controlled(annotations(), "length_controlled_minimal").win_rate is not None


def test_too_few_items_is_a_reason_not_a_number():
    score = length_controlled(annotations(n=4), "length_controlled_minimal")
    assert score.win_rate is None and score.missing.startswith("too few items: 4")


def test_the_policy_against_itself_is_50_by_construction():
    items = [Annotation(i, 1.5, "same", "same") for i in range(3)]
    score = length_controlled(items, "length_controlled_v1", self_reference=True)
    assert (score.win_rate, score.standard_error, score.missing) == (50.0, 0.0, None)


def test_a_glm_that_fails_records_why(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no hub, no cache
    score = length_controlled(annotations(), "length_controlled_v1")
    assert score.win_rate is None
    assert score.missing.startswith("length_controlled_v1: ") and "\n" not in score.missing


def test_auto_takes_the_leaderboards_glm_on_alpaca_evals_805_only():
    assert choose_glm("auto", 805) == "length_controlled_v1"
    assert choose_glm("auto", 150) == "length_controlled_minimal"
    assert choose_glm("length_controlled_v1", 20) == "length_controlled_v1"
