"""A campaign its judge or annotator cannot judge is refused before Ray starts, with one
line saying what to change, and nothing stored."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from orchestrator.config import CampaignConfig
from orchestrator.judgeability import judging_problems

CUTLOOP = str(Path(sys.executable).parent / "cutloop")
IFEVAL = {"key": 1, "prompt": "Write. No commas.", "instruction_id_list": ["punctuation:no_comma"],
          "kwargs": [{}]}  # fmt: skip
PLAIN = {"instruction": "Write a poem.", "output": "A reference poem."}


def write(path: Path, *records: dict) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def config(**settings) -> CampaignConfig:
    return CampaignConfig.model_validate({"name": "c", **settings})


def test_the_rule_judge_refuses_instructions_without_constraints(tmp_path):
    plain = write(tmp_path / "plain.jsonl", IFEVAL, PLAIN, PLAIN)
    (problem,) = judging_problems(config(instructions={"kind": "file", "path": str(plain)}))
    assert problem.startswith(f"judge: {{kind: rules}} cannot judge {plain}: 2 of its 3 records")
    assert "(the first: line 2)" in problem and "judge: {kind: openai}" in problem
    assert "\n" not in problem
    hf = config(instructions={"kind": "hf", "dataset": "tatsu-lab/alpaca"})
    assert "instructions: {kind: hf} (tatsu-lab/alpaca)" in judging_problems(hf)[0]


def test_instructions_the_judge_can_judge_pass(tmp_path):
    ifeval = write(tmp_path / "ifeval.jsonl", IFEVAL)
    plain = write(tmp_path / "plain.jsonl", PLAIN)
    judge = {"kind": "openai", "base_url": "http://127.0.0.1:9", "model": "m"}
    assert judging_problems(config()) == []  # the built-in set
    assert judging_problems(config(instructions={"kind": "file", "path": str(ifeval)})) == []
    assert judging_problems(config(instructions={"kind": "file", "path": str(plain)},
                                   judge=judge)) == []  # fmt: skip
    # an evaluation-only campaign (`cutloop eval`) judges nothing
    evaluation_only = config(rounds=0, instructions={"kind": "file", "path": str(plain)})
    assert judging_problems(evaluation_only) == []


def test_the_rule_annotator_refuses_an_eval_set_without_constraints(tmp_path):
    plain = write(tmp_path / "alpaca.jsonl", PLAIN)
    evaluation = {"eval_set": "file", "path": str(plain)}
    (problem,) = judging_problems(config(evaluation=evaluation))
    assert problem.startswith(f"evaluation.annotator: rules cannot compare answers to {plain}")
    assert "evaluation.annotator: alpaca_eval_gpt4" in problem
    alpaca = config(evaluation={**evaluation, "annotator": "alpaca_eval_gpt4"})
    assert judging_problems(alpaca) == []
    ifeval = write(tmp_path / "ifeval.jsonl", IFEVAL)
    assert judging_problems(config(evaluation={"eval_set": "file", "path": str(ifeval)})) == []


def test_an_unknown_ifeval_id_refuses_the_campaign_whatever_its_judge(tmp_path):
    spanish = {**IFEVAL, "instruction_id_list": ["language:response_language"]}
    path = write(tmp_path / "ifeval.jsonl", IFEVAL, spanish)
    judge = {"kind": "openai", "base_url": "http://127.0.0.1:9", "model": "m"}
    (problem,) = judging_problems(config(instructions={"kind": "file", "path": str(path)},
                                         judge=judge))  # fmt: skip
    assert problem == (
        f"instructions.path: {path}: line 2: instruction id 'language:response_language' "
        "is not one cutloop can check"
    )


def test_judging_problems_imports_neither_torch_nor_ray():
    code = ("import sys, orchestrator.judgeability; "
            "print(sorted({'torch', 'ray', 'vllm'} & set(sys.modules)))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr


def test_cutloop_run_refuses_before_ray_starts_and_stores_nothing(tmp_path):
    plain = write(tmp_path / "plain.jsonl", PLAIN)
    campaign = tmp_path / "campaign.yaml"
    settings = {"name": "plain", "rounds": 1, "instructions": {"kind": "file", "path": str(plain)}}
    campaign.write_text(yaml.safe_dump(settings))
    database = tmp_path / "store.db"
    env = {
        **os.environ,
        "CUTLOOP_HOME": str(tmp_path / "home"),
        "CUTLOOP_DATABASE_URL": f"sqlite:///{database}",
        "RAY_ADDRESS": "127.0.0.1:9",  # were Ray joined, it would fail with another error
    }
    done = subprocess.run(
        [CUTLOOP, "run", str(campaign)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {campaign}: judge: {{kind: rules}} cannot judge"), line
    assert not database.exists() and not (tmp_path / "home").exists()
