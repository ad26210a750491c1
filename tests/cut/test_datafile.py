import json

import pytest

from cut.datafile import DataFileError, load_judged_file
from cut.examples import Polarity


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_reference_json_polarity_failures_and_input(tmp_path):
    records = [
        {"instruction": "Add.", "input": "2 and 3", "output": "5", "judgment": None},
        {"instruction": "Add 2 and 2.", "input": "", "output": "4", "judgment": "Perfect."},
        {"instruction": "Add 7 and 8.", "input": "", "output": "16", "judgment": "Wrong: 15."},
        {"instruction": "Q", "input": "", "output": "A", "judgment": "$ERROR$"},
        {"instruction": "Q", "input": "", "output": "A", "judgment": "  "},
    ]
    data = load_judged_file(write(tmp_path, "ref.json", records))
    assert [e.polarity for e in data.examples] == [
        Polarity.POSITIVE,
        Polarity.POSITIVE,
        Polarity.NEGATIVE,
    ]
    assert data.examples[0].instruction == "Add.\n\n2 and 3"
    assert data.failed == [3, 4]
    assert (data.n_positive, data.n_negative) == (2, 1)


def test_jsonl_polarity_field_overrides_the_rule(tmp_path):
    lines = [
        {"instruction": "a", "response": "b", "judgment": "Looks fine", "polarity": "positive"},
        {"instruction": "a", "response": "b", "judgment": "Perfect"},
        {"instruction": "a", "response": "b", "judgment": "Wrong."},
        {"instruction": "a", "response": "b", "judgment": "$ERROR$"},
    ]
    path = write(tmp_path, "d.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n\n")
    data = load_judged_file(path)
    assert [e.polarity for e in data.examples] == ["positive", "positive", "negative"]
    assert data.failed == [3]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "bad.json",
            [{"instruction": "a", "output": "b", "judgment": 3}],
            "record 0: field 'judgment'",
        ),
        ("bad.json", [{"instruction": "a", "judgment": None}], "record 0: field 'output'"),
        ("bad.json", {"instruction": "a"}, "expected a JSON list"),
        ("bad.json", "[{\n", "line 2: invalid JSON"),
        (
            "bad.jsonl",
            '{"instruction": "a", "response": "b", "judgment": "ok"}\n'
            '{"instruction": "a", "judgment": "x"}\n',
            "line 2: field 'response'",
        ),
        (
            "bad.jsonl",
            '{"instruction": "a", "response": "b", "judgment": "x", "polarity": "meh"}\n',
            "line 1: field 'polarity'",
        ),
        ("bad.jsonl", "{not json}\n", "line 1: invalid JSON"),
    ],
)
def test_malformed_files_name_the_record_and_field(tmp_path, name, content, message):
    with pytest.raises(DataFileError, match=message):
        load_judged_file(write(tmp_path, name, content))


def test_shipped_sample_loads():
    from pathlib import Path

    sample = Path(__file__).parents[2] / "campaigns" / "data" / "offline-sample.json"
    data = load_judged_file(sample)
    assert data.n_negative >= 10 and data.n_positive >= 4 and len(data.failed) == 2


def test_spans_are_read_when_given_and_refused_outside_the_answer(tmp_path):
    lines = [
        {"instruction": "a", "response": "sea, sky", "judgment": "Commas.", "spans": [[3, 4]]},
        {"instruction": "a", "response": "sea sky", "judgment": "Perfect."},
    ]
    path = write(tmp_path, "spans.jsonl", "\n".join(json.dumps(line) for line in lines))
    assert [e.spans for e in load_judged_file(path).examples] == [((3, 4),), ()]
    record = {"instruction": "a", "input": "", "output": "54", "judgment": "No.", "spans": [[0, 2]]}
    assert load_judged_file(write(tmp_path, "ref.json", [record])).examples[0].spans == ((0, 2),)
    bad = write(tmp_path, "bad.jsonl", json.dumps({**lines[0], "spans": [[3, 40]]}))
    with pytest.raises(DataFileError, match=r"line 1: .*spans: \[3, 40\] is not within the answer"):
        load_judged_file(bad)
