import hashlib
import json

import pytest

from cut.datafile import DataFileError
from judge.base import JudgeRequest
from judge.ifeval_rules import IFEvalEndWith
from judge.pairwise import PairwiseItem
from orchestrator.config import (
    BuiltinInstructions,
    CampaignConfig,
    EvaluationSettings,
    FileInstructions,
    HFInstructions,
)
from orchestrator.instructions import (
    eval_items,
    eval_set_sha256,
    read_eval_set,
    train_instructions,
    verifiable_instructions,
)
from orchestrator.judging import make_annotator, make_judge


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


def ifeval_record(key: int, prompt: str, ids: list[str], kwargs: list[dict]) -> dict:
    """As google/IFEval and IFBench give them: every kwarg name of a record, nulls too."""
    names = {"num_words", "relation", "end_phrase", "language"}
    return {"key": key, "prompt": prompt, "instruction_id_list": ids,
            "kwargs": [{n: k.get(n) for n in names} for k in kwargs]}  # fmt: skip


def write_jsonl(path, records: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


IFEVAL = [
    ifeval_record(1, "Describe the sea in under 5 words. No commas.",
                  ["length_constraints:number_words", "punctuation:no_comma"],
                  [{"num_words": 5, "relation": "less than"}, {}]),
    ifeval_record(2, "Say hi. End with 'Bye.'", ["startend:end_checker"], [{"end_phrase": "Bye."}]),
]  # fmt: skip


def test_ifeval_records_train_judge_and_evaluate_with_their_constraints(tmp_path):
    path = write_jsonl(
        tmp_path / "ifeval.jsonl",
        [*IFEVAL, {"instruction": "A plain one.", "output": "A reference."}],
    )
    assert train_instructions(FileInstructions(path=path)) == [
        IFEVAL[0]["prompt"], IFEVAL[1]["prompt"], "A plain one."
    ]  # fmt: skip
    first, second, plain = eval_items(EvaluationSettings(eval_set="file", path=path))
    assert first.reference is None and second.constraints == (IFEvalEndWith("Bye."),)
    assert (plain.constraints, plain.reference) == (None, "A reference.")
    config = CampaignConfig.model_validate(
        {"name": "x", "instructions": {"kind": "file", "path": str(path)}}
    )
    judge = make_judge(config.judge, tmp_path, verifiable_instructions(config))
    wordy_answer = "The sea, it is wide and blue."
    wordy, brief, unknown = judge.judge([
        JudgeRequest(IFEVAL[0]["prompt"], wordy_answer),
        JudgeRequest(IFEVAL[0]["prompt"], "Wide blue sea."),
        JudgeRequest("A plain one.", "Anything."),
    ])  # fmt: skip
    assert wordy.polarity == "negative" and "7 words" in wordy.text and "commas" in wordy.text
    assert brief.polarity == "positive" and unknown.status == "failed"
    annotator = make_annotator(config.evaluation, tmp_path, verifiable_instructions(config))
    (preference,) = annotator.annotate([PairwiseItem(IFEVAL[0]["prompt"], wordy_answer, "Sea.")])
    assert preference.preference == 2.0  # the policy's answer meets both constraints


def test_an_ifeval_eval_set_is_identified_by_its_kwargs_too(tmp_path):
    path = write_jsonl(tmp_path / "eval.jsonl", IFEVAL)
    before = eval_set_sha256(read_eval_set(path))
    edited = [IFEVAL[0], ifeval_record(2, IFEVAL[1]["prompt"], ["startend:end_checker"],
                                       [{"end_phrase": "Goodbye."}])]  # fmt: skip
    assert eval_set_sha256(read_eval_set(write_jsonl(path, edited))) != before
    # AlpacaEval's sets keep the identity campaigns stored before IFEval's records
    alpaca = tmp_path / "alpaca.json"
    alpaca.write_text(json.dumps([{"instruction": "q", "output": "ref"}]))
    expected = hashlib.sha256(json.dumps([["q", "ref"]]).encode()).hexdigest()
    assert eval_set_sha256(read_eval_set(alpaca)) == expected


def test_an_unknown_ifeval_id_is_refused_naming_file_line_and_id(tmp_path):
    spanish = ifeval_record(3, "Hola.", ["language:response_language"], [{"language": "es"}])
    path = write_jsonl(tmp_path / "ifbench.jsonl", [IFEVAL[0], spanish])
    for read in (
        lambda: train_instructions(FileInstructions(path=path)),
        lambda: read_eval_set(path),
    ):
        with pytest.raises(DataFileError) as refused:
            read()
        assert str(refused.value) == (
            f"{path}: line 2: instruction id 'language:response_language' is not one cutloop "
            "can check"
        )
