"""IFEval's ids and kwargs read as cutloop constraints: what each says and where it
faults an answer (the verdicts themselves: test_ifeval_oracle.py), and the records and
kwargs refused."""

import pytest

from judge import ifeval_rules as i
from judge.ifeval_ids import constraint_of, read_ifeval_record
from judge.rules import LetterFrequency, MaxWords, MinWords

# (id, kwargs, answer, words its violation says, the exact texts its spans cover)
VIOLATED = [
    ("keywords:existence", {"keywords": ["river"]}, "no such word", ['"river"'], []),
    ("keywords:frequency", {"keyword": "light", "frequency": 2, "relation": "less than"},
     "lights, delight", ["appears 2 times", "less than 2"], ["light"]),
    ("keywords:letter_frequency", {"letter": "Z", "let_frequency": 2, "let_relation": "less than"},
     "Zoo zen", ['"z" appears 2 times', "less than 2"], ["z"]),
    ("detectable_content:number_placeholders", {"num_placeholders": 3}, "[] [a]",
     ["2 placeholders", "at least 3"], []),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "*a\n-b\n- c",
     ["3 bullet points", "exactly 1"], ["-b", "- c"]),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 3}, "**a** *b*",
     ["2 *highlighted*", "at least 3"], []),
    ("detectable_format:title", {}, "<< >>", ["no title"], []),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "PS bye", ['"P.S."'], []),
    ("startend:end_checker", {"end_phrase": "Bye now."}, "Fine. Bye then.", ['"Bye now."'],
     ["Bye then."]),
    ("detectable_format:json_format", {}, "```jSoN\n{}\n```", ["not valid JSON"], ["j"]),
    ("detectable_format:multiple_sections", {"section_spliter": "Part", "num_sections": 3},
     "Part 1 a Part 2 b", ['2 sections with "Part X"', "at least 3"], []),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": "less than"},
     "Dr. Smith left. He ran. Fast.", ["3 sentences", "less than 2"], ["He ran. Fast."]),
    ("change_case:capital_word_frequency",
     {"capital_frequency": 2, "capital_relation": "less than"}, "DON'T say NO",
     ['3 words in all capital letters ("DO", "N\'T", "NO")'], ["N'T", "NO"]),
    ("detectable_format:constrained_response", {}, "My answer is yes", ["any of the options"], []),
    ("combination:two_responses", {}, "same\n******\nsame", ["the same response twice"], []),
    ("length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "then"}, "a\n\n  Now b",
     ['starts with "now"', '"then"'], ["Now"]),
]  # fmt: skip


def test_every_ifeval_class_has_a_case():
    assert set(i.IFEVAL_TYPES) <= {type(constraint_of(c[0], c[1])) for c in VIOLATED}


@pytest.mark.parametrize(("instruction_id", "kwargs", "answer", "words", "texts"), VIOLATED)
def test_a_violation_says_what_is_wrong_and_spans_the_offending_text(
    instruction_id, kwargs, answer, words, texts
):
    constraint = constraint_of(instruction_id, kwargs)
    judgment = constraint.violation(answer)
    assert judgment is not None and judgment.startswith(("The ", "Paragraph ")), judgment
    for word in words:
        assert word in judgment, judgment
    assert [answer[a:b] for a, b in constraint.faulty_spans(answer)] == texts


def test_kwargs_are_read_as_ifeval_passes_them():
    # "less than 5 words" is at most 4 of IFEval's words; "at least" is at least
    less = constraint_of(
        "length_constraints:number_words", {"num_words": 5, "relation": "less than"}
    )
    assert less == MaxWords(4)
    assert constraint_of(
        "length_constraints:number_words", {"num_words": 5, "relation": "at least"}
    ) == MinWords(5)
    letter = {"letter": "Q", "let_frequency": 2, "let_relation": "at least", "keywords": None}
    assert constraint_of("keywords:letter_frequency", letter) == LetterFrequency("q", 2)
    assert constraint_of("startend:end_checker", {"end_phrase": " Bye. "}).phrase == "Bye."


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "message"),
    [
        ("language:response_language", {"language": "es"}, "is not one cutloop can check"),
        ("length_constraints:number_words", {"relation": "less than"}, "'num_words' is missing"),
        ("length_constraints:number_words", {"num_words": 0, "relation": "at least"}, "missing"),
        ("keywords:frequency", {"keyword": "a", "frequency": 2, "relation": "at most"},
         "'relation' must be 'less than' or 'at least'"),
        ("keywords:letter_frequency", {"letter": "ab", "let_frequency": 1,
                                       "let_relation": "at least"}, "one letter a-z"),
        ("length_constraints:nth_paragraph_first_word",
         {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}, "past num_paragraphs"),
        ("detectable_content:number_placeholders", {"num_placeholders": 2.5}, "positive integer"),
    ],
)  # fmt: skip
def test_an_id_or_kwarg_ifeval_would_not_check_as_given_is_refused(instruction_id, kwargs, message):
    with pytest.raises(ValueError, match=message) as refused:
        constraint_of(instruction_id, kwargs)
    assert repr(instruction_id) in str(refused.value)


def test_a_record_needs_one_kwargs_object_per_id():
    record = {"key": 7, "prompt": "Write.", "instruction_id_list": ["punctuation:no_comma"]}
    with pytest.raises(ValueError, match="field 'kwargs'"):
        read_ifeval_record(record)
    read = read_ifeval_record({**record, "kwargs": [{"num_words": None}]})
    assert read.instruction.text == "Write." and len(read.instruction.constraints) == 1
