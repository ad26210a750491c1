"""The `cutloop` command as users run it: a real subprocess of the installed script."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "campaigns" / "data" / "offline-sample.json"
CUTLOOP = str(Path(sys.executable).parent / "cutloop")


def cutloop(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CUTLOOP, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}
    )


def test_malformed_data_fails_before_any_model_is_loaded(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "response": "b", "judgment": "x"}\n{"instruction": 1}\n')
    done = cutloop(
        "train", "--model", "no-such-model", "--data", str(bad), "--out", str(tmp_path / "o")
    )
    assert done.returncode == 2
    assert "line 2: field 'instruction'" in done.stderr
    assert not (tmp_path / "o").exists()


def test_invalid_setting_names_field_and_value(tmp_path):
    done = cutloop(
        "train", "--model", "m", "--data", str(SAMPLE), "--out", str(tmp_path), "--lambda", "-1"
    )
    assert done.returncode == 2
    assert "lam" in done.stderr and "-1" in done.stderr


@pytest.mark.integration
def test_models_fetch_prints_directory_last_and_is_idempotent(smollm2_dir):
    done = cutloop("models", "fetch", "smollm2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(smollm2_dir)
    assert "downloading" not in done.stderr  # already complete: nothing fetched again


@pytest.mark.integration
def test_train_on_the_shipped_sample_writes_a_loadable_checkpoint(smollm2_dir, tmp_path):
    out = tmp_path / "ckpt"
    done = cutloop(
        "train", "--model", "smollm2", "--data", str(SAMPLE), "--out", str(out),
        "--epochs", "1", "--batch-size", "8",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(out)
    assert "2 failed judgments skipped" in " ".join(done.stdout.split())
    report = json.loads((out / "train_report.json").read_text())
    assert report["failed_judgments"] == [22, 23]
    assert len(report["steps"]) == 3  # 16 negatives + int(0.25*16)=4 positives, batch 8
    assert report["flagged"] and all(f["positions"] is not None for f in report["flagged"])

    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoModelForCausalLM.from_pretrained(out)
    assert AutoTokenizer.from_pretrained(out).chat_template
