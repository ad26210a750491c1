import pytest

from judge import rules as r
from judge.ifeval import ItemResult, constraint_results, ifeval_scores, loose_variants
from judge.instructions import VerifiableInstruction, builtin_instructions


def instruction(*constraints: r.Constraint) -> VerifiableInstruction:
    return VerifiableInstruction("Write about the sea.", constraints)


def test_the_eight_variants_are_ifevals():
    variants = loose_variants("Sure:\n**the sea**\nBye")
    assert variants == [
        "Sure:\n**the sea**\nBye", "Sure:\nthe sea\nBye",
        "**the sea**\nBye", "Sure:\n**the sea**", "**the sea**",
        "the sea\nBye", "Sure:\nthe sea", "the sea",
    ]  # fmt: skip


def test_a_violation_only_in_the_first_line_is_met_loosely_not_strictly():
    response = "Sure! Here it is:\nthe sea is calm and the sky is wide."
    assert constraint_results(instruction(r.AllLowercase()), response) == ([False], [True])


def test_bold_markers_break_an_ending_strictly_not_loosely():
    ending = r.EndWith("That is all for today.")
    response = "The sea is calm.\n**That is all for today.**"
    assert constraint_results(instruction(ending), response) == ([False], [True])


def test_each_constraint_is_checked_on_its_own():
    both = instruction(r.AllLowercase(), r.NoCommas())
    # the commas sit in the last line, the capital in the first: loose removes each
    assert constraint_results(both, "Hello\nthe sea is calm\nbye, sea") == (
        [False, False], [True, True],
    )  # fmt: skip
    assert constraint_results(both, "the sea, the sky") == ([True, False], [True, False])


def test_a_blank_answer_meets_nothing_even_a_prohibition():
    assert constraint_results(instruction(r.ForbiddenWords(("very",))), " \n ") == (
        [False], [False],
    )  # fmt: skip


def test_a_tally_counts_met_constraints():
    both = instruction(r.AllLowercase(), r.NoCommas())
    assert ItemResult.of(both, "Hi\nthe sea, calm\nbye") == ItemResult(2, 0, 1)
    # loose is an upper bound: each constraint may pick its own variant, here the first
    # line alone (no commas) for one and the rest (no capitals) for the other
    assert ItemResult.of(both, "Hi\nthe sea, calm") == ItemResult(2, 0, 2)


def test_instruction_level_pools_constraints_prompt_level_needs_all():
    scores = ifeval_scores([ItemResult(2, 1, 2), ItemResult(1, 1, 1), ItemResult(3, 0, 1)])
    assert scores.n == 3
    assert scores.prompt_strict == pytest.approx(100 / 3)  # only the second item
    assert scores.prompt_loose == pytest.approx(200 / 3)
    # pooled: 2 of 6 constraints, not the mean of 1/2, 1/1 and 0/3 (50%)
    assert scores.instruction_strict == pytest.approx(100 * 2 / 6)
    assert scores.instruction_loose == pytest.approx(100 * 4 / 6)


def test_nothing_to_score_is_unknown():
    assert ifeval_scores([]) is None


def test_every_held_out_instruction_can_be_scored():
    for verifiable in builtin_instructions()["held_out"]:
        tally = ItemResult.of(verifiable, "the sea is calm.")
        assert tally.constraints == len(verifiable.constraints) >= 1
        assert 0 <= tally.strict_met <= tally.loose_met <= tally.constraints
