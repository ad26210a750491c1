import dataclasses

import pytest

from judge import rules as r
from judge.base import JudgeRequest, JudgmentStatus
from judge.instructions import FAMILIES, builtin_instructions
from judge.rule_judge import PERFECT, RuleJudge

CASES = [
    # constraint, passing response, failing response, words the judgment must contain
    (
        r.AllLowercase(),
        "the sea is calm today.",
        "the sea near Paris is calm.",
        ["capital letters", "Paris"],
    ),
    (r.AllUppercase(), "THE SEA IS CALM.", "THE SEA is CALM.", ["lowercase", "is"]),
    (
        r.CapitalWordLimit(1),
        "The SEA is calm.",
        "The SEA is VERY calm.",
        ["2 all-capital words", '"VERY"'],
    ),
    (r.NoCommas(), "sea and sky", "the sea, sky and sun", ['("sea, sky")', "forbids commas"]),
    (r.NoExclamation(), "What a day.", "What a day! Truly.", ["exclamation mark", "day!"]),
    (r.BulletPoints(2), "* one\n* two", "* one\n* two\n- three", ["3 bullet points", "exactly 2"]),
    (
        r.Paragraphs(2),
        "first part\n***\nsecond part",
        "one block only",
        ["1 paragraphs", "exactly 2"],
    ),
    (r.Sections(2), "SECTION 1 a\nSECTION 2 b", "SECTION 1 only", ["1 sections", "asks for 2"]),
    (r.Highlights(2), "*one* and *two*", "only *one* here", ["1 *highlighted*", "at least 2"]),
    (r.Title(), "<<a calm sea>>\ntext", "a calm sea\ntext", ["no title", "<<"]),
    (
        r.Placeholders(2),
        "Send it to [name] at [address].",
        "Send it to [name].",
        ["1 placeholders", "at least 2"],
    ),
    (
        r.MaxWords(5),
        "one two three four five",
        "one two three four five six",
        ["6 words", "limit of 5"],
    ),
    (r.MinWords(5), "one two three four five", "one two", ["2 words", "required 5"]),
    (r.MaxSentences(2), "One. Two.", "One. Two. Three.", ["3 sentences", "limit of 2"]),
    (
        r.IncludeKeywords(("river", "stone")),
        "A river and a stone.",
        "A river only.",
        ['keyword "stone"'],
    ),
    (
        r.ForbiddenWords(("very",)),
        "It is large.",
        "It is very large.",
        ['forbidden word "very"', "is very large"],
    ),
    (
        r.KeywordFrequency("light", 2),
        "light and light",
        "light once",
        ['"light" appears 1 times', "at least 2"],
    ),
    (r.LetterFrequency("z", 2), "zig zag", "zig", ['"z" appears 1 times']),
    (
        r.EndWith("That is all."),
        "Done. That is all.",
        "That is all. Bye.",
        ['"...That is all. Bye."', 'phrase "That is all."'],
    ),
    (r.StartWith("Indeed"), "Indeed it is.", "Well, indeed.", ['starts with "Well"', '"Indeed"']),
    (r.Postscript("P.S."), "Hi.\nP.S. bye", "Hi. Bye.", ['postscript starting with "P.S."']),
    (r.Quotation(), '"all quoted"', 'not "quoted"', ["not wrapped in double quotation marks"]),
    (r.ValidJson(), '```json\n{"a": 1}\n```', "{'a': 1}", ["not valid JSON", "line 1 column 2"]),
    (
        r.RepeatRequest("Write a poem."),
        "Write a poem. Roses are red.",
        "Roses are red.",
        ["does not start by repeating", '"Roses are red....'],
    ),
]


@pytest.mark.parametrize(
    ("constraint", "good", "bad", "words"), CASES, ids=[c[0].kind for c in CASES]
)
def test_checker_passes_good_and_explains_bad(constraint, good, bad, words):
    assert constraint.violation(good) is None
    judgment = constraint.violation(bad)
    assert judgment is not None and judgment.startswith(("The ",)) and judgment.endswith(".")
    for word in words:
        assert word in judgment, judgment
    # the instruction sentence states the constraint's own settings (N, keywords, phrase);
    # RepeatRequest's setting is the request itself, which its sentence calls "the request"
    description = constraint.describe()
    assert description[0].isupper() and description.endswith((".", '"')), description
    for field in dataclasses.fields(constraint):
        if field.name == "request":
            continue
        value = getattr(constraint, field.name)
        for setting in value if isinstance(value, tuple) else (value,):
            assert str(setting) in description, (field.name, setting, description)


def test_every_constraint_type_is_tested_and_there_are_at_least_20():
    assert len(r.CONSTRAINT_TYPES) >= 20
    assert {type(c[0]) for c in CASES} == set(r.CONSTRAINT_TYPES)


def test_the_builtin_set_is_seeded_with_disjoint_splits():
    sets = builtin_instructions()
    train, held_out = sets["train"], sets["held_out"]
    assert len(train) >= 300 and len(held_out) >= 100
    assert not {i.text for i in train} & {i.text for i in held_out}
    assert {c.kind for i in train for c in i.constraints} == {t.kind for t in FAMILIES}
    builtin_instructions.cache_clear()
    assert builtin_instructions()["held_out"] == held_out  # the same on every call


def test_rule_judge_gives_perfect_or_the_violations_and_fails_unknown_instructions():
    instruction = next(
        i
        for i in builtin_instructions()["train"]
        if {c.kind for c in i.constraints} == {"no_commas"}
    )
    judge = RuleJudge()
    good, bad, unknown = judge.judge(
        [
            JudgeRequest(instruction.text, "A calm sea and a clear sky."),
            JudgeRequest(instruction.text, "A calm sea, a clear sky."),
            JudgeRequest("An instruction with no known constraints.", "Anything."),
        ]
    )
    assert (good.polarity, good.text) == ("positive", PERFECT)
    assert bad.polarity == "negative" and "commas" in bad.text
    assert unknown.status == JudgmentStatus.FAILED and unknown.polarity is None
