"""The `cutloop` command as users run it: a real subprocess of the installed script."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from tests.orchestrator.campaigns import save_tiny_policy

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


def test_models_fetch_prints_directory_last_and_is_idempotent(smollm2_dir):
    done = cutloop("models", "fetch", "smollm2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(smollm2_dir)
    assert "downloading" not in done.stderr  # already complete: nothing fetched again


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


def test_train_a_gpt2_without_chat_template_adapts_its_own_linear_layers(tmp_path):
    """No Llama layer names and no chat template: LoRA adapts GPT-2's Conv1D layers (the
    merged checkpoint differs from the start in their weights only), the Alpaca
    contexts frame the examples. A target it lacks fails in one line, naming it."""
    from safetensors.torch import load_file

    policy = save_tiny_policy(tmp_path / "gpt2", "gpt2", chat=False)
    out = tmp_path / "ckpt"
    done = cutloop(
        "train", "--model", str(policy), "--data", str(SAMPLE), "--out", str(out),
        "--epochs", "1", "--batch-size", "8", "--precision", "fp32", "--lr", "1e-2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "train_report.json").read_text())
    assert len(report["steps"]) == 3 and report["flagged"]
    before, after = load_file(policy / "model.safetensors"), load_file(out / "model.safetensors")
    changed = {name for name in before if not before[name].equal(after[name])}
    layers = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    assert changed == {f"transformer.h.{i}.{layer}.weight" for i in (0, 1) for layer in layers}

    settings = tmp_path / "llama-targets.yaml"
    settings.write_text("lora_target_modules: [gate_proj, up_proj, down_proj]\n")
    done = cutloop(
        "train", "--model", str(policy), "--data", str(SAMPLE), "--out", str(tmp_path / "no"),
        "--config", str(settings),
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "error: lora_target_modules: GPT2LMHeadModel has no linear layer named gate_proj, "
        "up_proj, down_proj (its linear layers but the output head: c_attn, c_fc, c_proj)"
    )


def test_run_refuses_a_bad_campaign_before_starting_anything(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: c\nprompts_per_round: -3\n")
    env = {"CUTLOOP_HOME": str(tmp_path / "home")}
    done = cutloop("run", str(config), env=env)
    assert done.returncode == 2
    assert "prompts_per_round: Input should be greater than or equal to 1 (got -3)" in done.stderr
    assert not (tmp_path / "home" / "cutloop.db").exists()


def test_status_pause_and_cancel_name_what_is_missing(tmp_path):
    env = {"CUTLOOP_HOME": str(tmp_path)}
    done = cutloop("status", env=env)
    assert done.returncode == 2 and "no campaigns yet" in done.stderr
    for command in ("status", "pause", "cancel"):
        done = cutloop(command, "nope", env=env)
        assert done.returncode == 2 and "no campaign named 'nope'" in done.stderr


def test_annotators_are_added_listed_and_revoked_and_their_judgments_train(tmp_path):
    from sqlalchemy import select

    from cut.examples import Polarity
    from store.engine import make_engine, session_factory
    from store.judging import Submission, claim_task, publish_tasks, submit_judgment
    from store.models import Campaign
    from store.schema import upgrade
    from tests.store.factories import seeded_generations

    url = f"sqlite:///{tmp_path / 'cutloop.db'}"
    env = {"CUTLOOP_DATABASE_URL": url, "CUTLOOP_HOME": str(tmp_path / "home")}
    added = cutloop("annotators", "add", "alice", env=env)
    assert added.returncode == 0 and added.stdout.startswith("cla_")
    twice = cutloop("annotators", "add", "alice", env=env)
    assert (
        twice.returncode == 2 and "exists" in twice.stderr and len(twice.stderr.splitlines()) == 1
    )
    assert cutloop("annotators", "revoke", "alice", env=env).returncode == 0
    assert "revoked" in cutloop("annotators", "list", env=env).stdout

    upgrade(url)
    engine = make_engine(url)
    with session_factory(engine).begin() as session:
        _, round_, generations = seeded_generations(session, n_prompts=2)
        campaign = session.scalars(select(Campaign)).one()
        publish_tasks(session, round_.id, dict.fromkeys(generations))
        for verdict in ("Too short.", "Perfect as it is."):
            task = claim_task(session, round_.id, "alice", timedelta(minutes=1))
            polarity = Polarity.POSITIVE if verdict.startswith("Perfect") else Polarity.NEGATIVE
            submit_judgment(session, task, "alice", Submission(verdict, polarity, ((0, 6),)))
        name, index = campaign.name, round_.index
    engine.dispose()
    exported = tmp_path / "judged.json"
    done = cutloop("export", name, "--round", str(index), "--judgments", "-o", str(exported),
                   env=env)  # fmt: skip
    assert done.returncode == 0 and "2 judgments written" in done.stderr
    records = json.loads(exported.read_text())
    assert sorted((r["judgment"], r["annotator"], r["spans"]) for r in records) == [
        ("Perfect as it is.", "alice", [[0, 6]]), ("Too short.", "alice", [[0, 6]])
    ]  # fmt: skip
    policy = save_tiny_policy(tmp_path / "policy")
    trained = cutloop(
        "train", "--model", str(policy), "--data", str(exported), "--out", str(tmp_path / "o"),
        "--batch-size", "2", "--micro-batch-size", "2", "--precision", "fp32",
        "--report-to", "tensorboard",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    report = json.loads((tmp_path / "o" / "train_report.json").read_text())
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "o" / "tracking" / "tensorboard"))
    events.Reload()  # every step went to the tracker too
    assert [e.step for e in events.Scalars("train/loss")] == [s["step"] for s in report["steps"]]
