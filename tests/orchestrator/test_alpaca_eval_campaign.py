"""A campaign evaluated by AlpacaEval's own annotators, through the local OpenAI-compatible
test server: the stored scores are alpaca_eval's on the stored annotations, failed
annotations are counted, the eval set is fixed when the campaign starts, a round's
answers export as model_outputs.json, and `cutloop eval` scores a checkpoint outside a
campaign without paying for any annotation twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from judge.alpaca_eval_annotator import alpaca_eval
from orchestrator.campaign_run import run_campaign
from orchestrator.instructions import eval_set_sha256, read_eval_set
from store.models import Campaign, CampaignStatus, EvalRun, Round
from tests.db_fixtures import sqlite_only
from tests.judge.fake_openai import FakeOpenAI
from tests.orchestrator.campaigns import count, save_tiny_policy, tiny_campaign

CUTLOOP = str(Path(sys.executable).with_name("cutloop"))
FAILING = 2  # instructions whose annotation always fails


def write_eval_set(path: Path, extra: str = "") -> Path:
    """Eight instructions in AlpacaEval's format; references of varied length (the test
    server prefers the longer output), the last two impossible to annotate."""
    records = [
        {
            "instruction": f"Question {i}{extra}"
            + (" [[fault:500:always]]" if i >= 8 - FAILING else ""),
            "output": ["ok", "a reference answer", "no", "a long reference answer " * 3][i % 4],
            "generator": "reference_model",
            "dataset": "helpful_base" if i % 2 else "koala",
        }
        for i in range(8)
    ]
    path.write_text(json.dumps(records, indent=2))
    return path


def annotation_calls(server: FakeOpenAI) -> int:
    return sum("model_identifier" in r.content or "leaderboard" in r.content
               for r in server.requests)  # fmt: skip


def evaluation(eval_set: Path, server: FakeOpenAI, annotator: str) -> dict:
    return {
        "eval_set": "file",
        "path": str(eval_set),
        "annotator": annotator,
        "max_instructions": None,
        "endpoint": {"base_url": server.base_url, "api_key_env": "NO_KEY", "max_retries": 0},
    }


@sqlite_only  # the scoring
def test_stored_scores_are_alpaca_evals_on_the_stored_annotations(
    store_env, sessions, tmp_path, local_hub
):
    policy = save_tiny_policy(tmp_path / "policy")
    eval_set = write_eval_set(tmp_path / "eval.json")
    with FakeOpenAI() as server:
        settings = evaluation(eval_set, server, "weighted_alpaca_eval_gpt4_turbo")
        config = tiny_campaign("ae", policy, rounds=1, evaluation=settings)
        outcome = run_campaign(config)
        assert outcome.status == CampaignStatus.DONE, outcome.error
        paid = annotation_calls(server)
        assert paid == 2 * 8  # every item of both rounds once; failures are not retried
        assert run_campaign(config).status == CampaignStatus.DONE
        assert annotation_calls(server) == paid  # a done campaign pays nothing more

    metrics = alpaca_eval().metrics
    records = json.loads(eval_set.read_text())
    with sessions() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert campaign.eval_set_sha256 == eval_set_sha256(read_eval_set(eval_set))
        runs = list(s.scalars(select(EvalRun).join(Round).order_by(Round.index)))
        assert len(runs) == 2
        for run in runs:
            items = sorted(run.items, key=lambda i: i.position)
            assert [i.position for i in items] == list(range(8))
            assert items[1].dataset == "helpful_base"
            preferences = [i.preference for i in items]
            failed = [i for i in items if i.preference is None]
            assert [i.position for i in failed] == list(range(8 - FAILING, 8))
            assert (run.n, run.failed) == (8 - FAILING, FAILING)
            assert all("HTTP 500" in i.annotation_error for i in failed)
            assert {i.preference for i in items} - {None} <= {1.3, 1.7, 1.2, 1.8}
            # each item against its own reference, with its own verdict: the test server
            # prefers the longer output
            for item, record in zip(items, records, strict=True):
                assert (item.instruction, item.reference_output) == (
                    record["instruction"],
                    record["output"],
                )
                if item.preference is not None and len(item.output) != len(record["output"]):
                    policy_won = len(item.output) > len(record["output"])
                    assert (item.preference > 1.5) == policy_won, item.position
            assert len({i.preference > 1.5 for i in items if i.preference is not None}) == 2
            theirs = metrics.get_winrate([{"preference": p} for p in preferences])
            assert run.win_rate == pytest.approx(theirs["win_rate"])
            assert run.standard_error == pytest.approx(theirs["standard_error"])
            assert run.discrete_win_rate == pytest.approx(theirs["discrete_win_rate"])
            assert run.ties == theirs["n_draws"]
            frame = {
                "index": [i.position for i in items],
                "preference": preferences,
                "output_1": [i.reference_output for i in items],
                "output_2": [i.output for i in items],
                "generator_1": "reference_model",
                "generator_2": "policy",
                "annotator": run.annotator,
            }
            import pandas as pd

            lc = metrics.get_length_controlled_winrate(
                pd.DataFrame(frame), glm_name="length_controlled_minimal", save_weights_dir=None
            )
            assert run.lc_glm == "length_controlled_minimal" and run.lc_missing is None
            assert run.lc_win_rate == pytest.approx(lc["length_controlled_winrate"])
            assert run.lc_standard_error == pytest.approx(lc["lc_standard_error"], abs=1e-9)
            assert run.reference == "reference_model"
            assert run.annotator == "weighted_alpaca_eval_gpt4_turbo"
            assert run.annotator_version.startswith("alpaca_eval 0.6")


@sqlite_only  # the set's fingerprint
def test_the_eval_set_is_fixed_when_the_campaign_starts(store_env, sessions, tmp_path):
    from store.campaigns import create_campaign, fix_eval_set

    eval_set = write_eval_set(tmp_path / "eval.json")
    evaluation = {"eval_set": "file", "path": str(eval_set), "annotator": "alpaca_eval_gpt4"}
    config = tiny_campaign("fixed", tmp_path, rounds=0, evaluation=evaluation)
    with sessions.begin() as s:  # as the campaign's first run leaves it
        stored = create_campaign(s, "fixed", config.model_dump(mode="json", by_alias=True))
        fix_eval_set(s, stored, eval_set_sha256(read_eval_set(eval_set)))
    write_eval_set(eval_set, extra=" (edited)")
    outcome = run_campaign(config.model_copy(update={"rounds": 1}))
    assert outcome.status == CampaignStatus.FAILED
    assert "evaluation: campaign 'fixed' started on an eval set with sha256" in outcome.error
    with sessions() as s:
        assert count(s, Round) == 0
        assert s.scalars(select(Campaign.status)).one() == CampaignStatus.PENDING


@sqlite_only  # the CLI; stores: tests above
def test_cutloop_eval_scores_a_checkpoint_and_exports_its_outputs(
    db_url, sessions, tmp_path, cutloop_env
):
    policy = save_tiny_policy(tmp_path / "checkpoint")
    eval_set = write_eval_set(tmp_path / "eval.json")
    env = {**cutloop_env, "CUTLOOP_DATABASE_URL": db_url}
    with FakeOpenAI() as server:
        command = [
            CUTLOOP, "eval", "--model", str(policy), "--eval-set", str(eval_set),
            "--annotator", "alpaca_eval_gpt4", "--base-url", server.base_url,
            "--api-key-env", "NO_KEY", "--backend", "hf", "--max-new-tokens", "12",
        ]  # fmt: skip
        first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert first.returncode == 0, first.stderr
        paid = annotation_calls(server)
        again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        assert annotation_calls(server) == paid  # the same command resumes a done evaluation
    assert paid == 8 + FAILING * 5  # the 500s are retried by the client (max_retries 5)
    assert "alpaca_eval_gpt4 against reference_model" in first.stdout
    with sessions() as s:
        campaign = s.scalars(select(Campaign)).one()
        assert campaign.name.startswith("eval-checkpoint-") and campaign.config["rounds"] == 0
        run = s.scalars(select(EvalRun)).one()
        assert (run.n, run.failed) == (8 - FAILING, FAILING)
        outputs = [i.output for i in sorted(run.items, key=lambda i: i.position)]

    exported = tmp_path / "model_outputs.json"
    done = subprocess.run(
        [CUTLOOP, "export", campaign.name, "--round", "0", "--output", str(exported)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    frame = alpaca_eval().utils.load_or_convert_to_dataframe(exported)
    assert list(frame["output"]) == outputs
    assert set(frame["generator"]) == {f"{campaign.name}-round0"}
    instructions = [r["instruction"] for r in json.loads(eval_set.read_text())]
    assert list(frame["instruction"]) == instructions
    missing = subprocess.run(
        [CUTLOOP, "export", campaign.name, "--round", "3"], env=env, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2
    assert f"campaign {campaign.name!r} has no evaluation of round 3" in missing.stderr
