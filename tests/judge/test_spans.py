"""Where the judges say an answer goes wrong: each rule checker's spans on answers built
to violate it, and the spans found from a model judge's quotes."""

import pytest

from judge import rules as r
from judge.base import JudgeRequest
from judge.instructions import VerifiableInstruction
from judge.quotes import quoted_spans, quotes
from judge.rule_judge import RuleJudge

# (constraint, answer, the exact texts the spans must cover, in order)
LOCATED = [
    (r.AllLowercase(), "all fine Here and NASA too", ["H", "NASA"]),
    (r.AllUppercase(), "ALL CAPS but not This", ["but", "not", "his"]),
    (r.CapitalWordLimit(1), "USA and NATO and EU", ["NATO", "EU"]),
    (r.NoCommas(), "sea, sky, and sand", [",", ","]),
    (r.NoExclamation(), "Wow! Great!", ["!", "!"]),
    (r.BulletPoints(2), "Intro\n* one\n* two\n* three\n* four", ["* three", "* four"]),
    (r.Paragraphs(2), "a\n***\nb\n***\nc", ["***"]),
    (r.Sections(1), "SECTION 1 a\nSECTION 2 b", ["SECTION 2"]),
    (r.MaxWords(3), "one two three four five.", ["four five."]),
    (r.MaxSentences(2), "One. Two! Three? Four.", ["Three? Four."]),
    (r.ForbiddenWords(("very", "just")), "Very good, just very.", ["Very", "just", "very"]),
    (r.EndWith("That is all for today."), "I like it. It ends here.  ", ["It ends here."]),
    (r.StartWith("Indeed"), "  Sure, here it is.", ["Sure"]),
    (r.ValidJson(), 'Here: {"a": 1}', ["H"]),
    (r.ValidJson(), '```json\n{"a": 1, "b": \n```', [":"]),
    (r.RepeatRequest("Tell me a story."), "Tell me some story.", ["some"]),
]
ABSENT = [
    (r.IncludeKeywords(("river",)), "no such word here"),
    (r.Postscript(), "no postscript"),
    (r.Title(), "no title"),
    (r.Highlights(2), "no highlights"),
    (r.Placeholders(2), "no placeholders"),
    (r.KeywordFrequency("light", 3), "light once"),
    (r.LetterFrequency("z", 3), "no letter"),
    (r.MinWords(50), "too short"),
    (r.BulletPoints(3), "* only one"),
    (r.Sections(3), "SECTION 1 only"),
    (r.Quotation(), "not wrapped"),
]


def test_every_constraint_type_is_tested_for_its_spans():
    tested = {type(c) for c, *_ in LOCATED + ABSENT}
    assert tested == set(r.CONSTRAINT_TYPES)


@pytest.mark.parametrize(("constraint", "answer", "texts"), LOCATED)
def test_a_located_violation_spans_the_offending_text_and_nothing_else(constraint, answer, texts):
    assert constraint.violation(answer) is not None
    spans = constraint.faulty_spans(answer)
    assert [answer[start:end] for start, end in spans] == texts


@pytest.mark.parametrize(("constraint", "answer"), ABSENT)
def test_an_absence_has_no_span(constraint, answer):
    assert constraint.violation(answer) is not None
    assert constraint.faulty_spans(answer) == ()


def test_the_rule_judge_joins_the_spans_of_every_violated_constraint():
    instruction = VerifiableInstruction("Write.", (r.NoCommas(), r.StartWith("Indeed"), r.Title()))
    judge = RuleJudge([instruction])
    answer = "Sure, it is, done."
    [result] = judge.judge([JudgeRequest("Write.", answer)])
    assert [answer[a:b] for a, b in result.spans] == ["Sure,", ","]  # "Sure" and its comma touch
    [good] = judge.judge([JudgeRequest("Write.", "Indeed <<t>> ok")])
    assert good.spans == ()


def test_a_quote_found_in_the_answer_becomes_its_first_occurrence():
    answer = "The sum is 54. So 7 x 8 = 54, and 54 it is."
    spans = quoted_spans('Wrong: "7 x 8 = 54" should be 56.', answer)
    assert [answer[a:b] for a, b in spans] == ["7 x 8 = 54"]
    twice = quoted_spans('"54" is wrong.', answer)
    assert twice == ((11, 13),)  # the first of three


def test_quotes_match_across_other_whitespace_and_without_their_ellipsis():
    answer = "It was a\n  dark   and stormy night, and then"
    judgment = 'The opening “a dark and stormy night” is a cliché; "...and then"'
    spans = quoted_spans(judgment, answer)
    assert [answer[a:b] for a, b in spans] == ["a\n  dark   and stormy night", "and then"]
    assert quotes('"...and then" and "x…"') == ["and then", "x"]


def test_a_quote_not_in_the_answer_is_ignored():
    assert quoted_spans('It should say "perfectly", not "good".', "It is fine.") == ()
    assert quoted_spans("Perfect.", "anything") == ()
    assert quoted_spans('An empty quote "" and " " says nothing.', "a b") == ()
