import pytest

from cut.examples import (
    ExampleBuilder,
    JudgedExample,
    Polarity,
    RowKind,
    TrainingItem,
    downsample_positives,
    polarity_of,
)
from cut.templates import FAKE_POSITIVE_JUDGMENT, AlpacaTemplate

NEG = JudgedExample("What is 7 x 8?", "54", "Wrong: 7 x 8 is 56.", Polarity.NEGATIVE)
POS = JudgedExample("Say hi.", "hi", "Perfect.", Polarity.POSITIVE)


@pytest.mark.parametrize(
    ("judgment", "polarity"),
    [
        ("Perfect", Polarity.POSITIVE),
        ("  perfect!", Polarity.POSITIVE),
        ("...PERFECT. Nothing to add", Polarity.POSITIVE),
        ("'Perfect'", Polarity.POSITIVE),
        ("Perfectly wrong: 7 x 8 is 56", Polarity.NEGATIVE),
        ("Not perfect: the sum is wrong", Polarity.NEGATIVE),
        ("Imperfect", Polarity.NEGATIVE),
        ("", Polarity.NEGATIVE),
    ],
)
def test_polarity_rule(judgment, polarity):
    assert polarity_of(judgment) == polarity


def encode(tokenizer, text, special):
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def test_positive_becomes_align_p_on_plain_context(tokenizer):
    template = AlpacaTemplate()
    item = ExampleBuilder(tokenizer, template, 1024).build_one(0, POS)
    (row,) = item.rows
    assert row.kind == RowKind.ALIGN_P
    assert list(row.input_ids[: row.prompt_length]) == encode(
        tokenizer, template.plain("Say hi."), True
    )
    assert list(row.input_ids[row.prompt_length :]) == [
        *encode(tokenizer, "hi", False),
        tokenizer.eos_token_id,
    ]


@pytest.mark.parametrize("misalign_context", ["plain", "fake_positive"])
def test_negative_gives_paired_rows_with_identical_response_ids(tokenizer, misalign_context):
    template = AlpacaTemplate()
    item = ExampleBuilder(tokenizer, template, 1024, misalign_context).build_one(3, NEG)
    align_n, misalign = item.rows
    assert (align_n.kind, misalign.kind) == (RowKind.ALIGN_N, RowKind.MISALIGN)
    response = [*encode(tokenizer, "54", False), tokenizer.eos_token_id]
    assert list(align_n.input_ids[align_n.prompt_length :]) == response
    assert list(misalign.input_ids[misalign.prompt_length :]) == response
    assert list(align_n.input_ids[: align_n.prompt_length]) == encode(
        tokenizer, template.judged(NEG.instruction, NEG.judgment), True
    )
    expected_misalign = (
        template.plain(NEG.instruction)
        if misalign_context == "plain"
        else template.judged(NEG.instruction, FAKE_POSITIVE_JUDGMENT)
    )
    assert list(misalign.input_ids[: misalign.prompt_length]) == encode(
        tokenizer, expected_misalign, True
    )
    assert item.example_index == 3 and item.is_negative


def test_left_truncation_cuts_prompt_never_response(tokenizer):
    long = JudgedExample("x" * 500 + " END", "the answer", "Wrong.", Polarity.NEGATIVE)
    item = ExampleBuilder(tokenizer, AlpacaTemplate(), 64).build_one(0, long)
    response = [*encode(tokenizer, "the answer", False), tokenizer.eos_token_id]
    for row in item.rows:
        assert len(row.input_ids) == 64
        assert list(row.input_ids[row.prompt_length :]) == response
        # the kept prompt is the *end* of the full prompt: "### Response:\n" survives
        tail = "".join(tokenizer.convert_ids_to_tokens(list(row.input_ids[: row.prompt_length])))
        assert tail.endswith("### Response:\n")


def test_response_longer_than_max_length_is_reported_not_cut(tokenizer):
    too_long = JudgedExample("q", "y" * 80, "Wrong.", Polarity.NEGATIVE)
    report = ExampleBuilder(tokenizer, AlpacaTemplate(), 64).build([POS, too_long, NEG])
    assert report.too_long == [1]
    assert [item.example_index for item in report.items] == [0, 2]


def _items(n_negative: int, n_positive: int, tokenizer) -> list[TrainingItem]:
    builder = ExampleBuilder(tokenizer, AlpacaTemplate(), 256)
    examples = [NEG] * n_negative + [POS] * n_positive
    return builder.build(examples).items


def test_downsampling_keeps_all_negatives_and_ratio_positives(tokenizer):
    items = _items(8, 5, tokenizer)
    kept = downsample_positives(items, 0.25, seed=1)
    assert sum(i.is_negative for i in kept) == 8
    assert sum(not i.is_negative for i in kept) == 2  # int(0.25 * 8)
    assert kept == downsample_positives(items, 0.25, seed=1)  # seeded
    picks = {
        tuple(i.example_index for i in downsample_positives(items, 0.25, s)) for s in range(20)
    }
    assert len(picks) > 1  # the seed matters
    assert downsample_positives(items, 1.0, seed=1) == items  # fewer than int(ratio*n): all
    assert downsample_positives(items, None, seed=1) == items
