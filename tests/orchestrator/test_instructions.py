import json

import pytest

from cut.datafile import DataFileError
from orchestrator.config import (
    BuiltinInstructions,
    EvaluationSettings,
    FileInstructions,
    HFInstructions,
)
from orchestrator.instructions import eval_items, train_instructions


def test_builtin_train_and_held_out_are_disjoint():
    train = train_instructions(BuiltinInstructions())
    held_out = eval_items(EvaluationSettings())
    assert len(train) == 600 and len(held_out) == 200
    assert not set(train) & {i.instruction for i in held_out}
    assert all(i.reference is None for i in held_out)
    assert len(eval_items(EvaluationSettings(max_instructions=5))) == 5


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_file_instructions_are_deduplicated_in_order(tmp_path, suffix):
    records = [{"instruction": "b"}, {"instruction": "a"}, {"instruction": "b"}]
    path = tmp_path / f"x{suffix}"
    text = json.dumps(records) if suffix == ".json" else "\n".join(json.dumps(r) for r in records)
    path.write_text(text)
    assert train_instructions(FileInstructions(path=path)) == ["b", "a"]


def test_eval_file_needs_references_and_errors_name_the_record(tmp_path):
    path = tmp_path / "eval.json"
    path.write_text(json.dumps([{"instruction": "q", "output": "ref"}, {"instruction": "q2"}]))
    with pytest.raises(DataFileError, match="record 1: field 'output' must be a non-empty string"):
        eval_items(EvaluationSettings(eval_set="file", path=path))
    path.write_text(json.dumps([{"instruction": "q", "output": "ref"}]))
    (item,) = eval_items(EvaluationSettings(eval_set="file", path=path))
    assert (item.instruction, item.reference) == ("q", "ref")
    with pytest.raises(DataFileError, match=r"evaluation\.path"):
        eval_items(EvaluationSettings(eval_set="file"))


def test_a_hugging_face_dataset_with_alpaca_inputs(tmp_path):
    """A dataset directory loads like a hub id (offline here); Alpaca's `input` is appended."""
    rows = [
        {"instruction": "Translate to French.", "input": "Good morning"},
        {"instruction": "Name a colour.", "input": ""},
    ]
    (tmp_path / "train.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    source = HFInstructions(dataset=str(tmp_path), input_field="input")
    assert train_instructions(source) == ["Translate to French.\n\nGood morning", "Name a colour."]
