import pytest

from judge.base import JudgeRequest, JudgmentStatus
from judge.instructions import builtin_instructions
from judge.local_judge import LocalJudge, LocalJudgeConfig, parse_local_judgment
from judge.pairwise import PairwiseItem, RulePairwiseAnnotator
from tests.tiny_models import char_tokenizer, tiny_llama


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The sum is wrong: 7 x 8 is 56.\nNo.", ("The sum is wrong: 7 x 8 is 56.", "negative")),
        ("Everything is correct. Yes", ("Everything is correct.", "positive")),
        ("Yes.", ("Perfect.", "positive")),
        ("It misses the keyword.\nAnswer: no.", ("It misses the keyword.\nAnswer", "negative")),
    ],
)
def test_local_judgment_parsing(output, expected):
    parsed = parse_local_judgment(output)
    assert (parsed.text, parsed.polarity) == expected


@pytest.mark.parametrize("output", ["", "No.", "The answer is fine", "Yes and no, it depends"])
def test_output_without_a_usable_verdict_is_not_a_judgment(output):
    assert parse_local_judgment(output) is None


def test_local_judge_runs_a_real_model_and_records_unparsable_output_as_failure():
    tokenizer = char_tokenizer()
    judge = LocalJudge(
        LocalJudgeConfig(model="tiny-random", max_new_tokens=8, batch_size=2),
        model=tiny_llama(len(tokenizer)),
        tokenizer=tokenizer,
    )
    results = judge.judge(
        [JudgeRequest("Add 2 and 3.", "5"), JudgeRequest("Say hi.", "hi"), JudgeRequest("x", "y")]
    )
    assert len(results) == 3
    for result in results:  # random weights never write a verdict
        assert result.status == JudgmentStatus.FAILED and "no Yes/No verdict" in result.error
        assert result.tokens_out == 8 and result.polarity is None


def test_rule_pairwise_draws_equal_outputs_and_fails_unknown_instructions():
    instruction = next(i for i in builtin_instructions()["held_out"] if len(i.constraints) == 2)
    results = RulePairwiseAnnotator().annotate(
        [
            PairwiseItem(instruction.text, "x", "x"),
            PairwiseItem("unknown instruction", "a", "b"),
        ]
    )
    assert results[0].preference == 1.5
    assert results[1].preference is None and "no constraints" in results[1].error


def test_rule_pairwise_win_and_loss():
    instruction = next(
        i
        for i in builtin_instructions()["train"]
        if [c.kind for c in i.constraints] == ["no_commas"]
    )
    good, bad = "A calm sea and a clear sky.", "A calm sea, a clear sky."
    results = RulePairwiseAnnotator().annotate(
        [PairwiseItem(instruction.text, bad, good), PairwiseItem(instruction.text, good, bad)]
    )
    assert [r.preference for r in results] == [2.0, 1.0]


def test_a_local_negative_judgments_quotes_become_spans():
    from judge.local_judge import spans_of

    request = JudgeRequest("What is 7 x 8?", "It is 54, I think.")
    negative = parse_local_judgment('The answer "54" is wrong, and "55" too. No.')
    assert [request.response[a:b] for a, b in spans_of(negative, request)] == ["54"]
    positive = parse_local_judgment('Perfect: "54" is right. Yes.')
    assert spans_of(positive, request) == ()
