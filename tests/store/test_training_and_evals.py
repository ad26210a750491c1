import pytest

from store.campaigns import ensure_round
from store.errors import ConflictError, StoreError
from store.evals import (
    add_eval_items,
    finish_eval_run,
    first_round_items,
    first_round_outputs,
    start_eval_run,
)
from store.models import CheckpointKind, EvalItem, EvalRun, TrainingRun
from store.results import sha256_text
from store.training import (
    add_checkpoint,
    add_flagged_tokens,
    add_training_steps,
    checkpoint_of,
    finish_training_run,
    latest_checkpoint,
    start_training_run,
    training_run_of,
)
from tests.store.factories import campaign_with_round, seeded_generations

STEP = {
    "loss": 1.2,
    "mle_loss": 1.0,
    "unlikelihood_loss": 0.2,
    "n_flagged": 3,
    "flagged_fraction": 0.1,
    "tokens_per_s": 180.0,
    "learning_rate": 4e-4,
    "grad_norm": 0.9,
}


def test_training_run_steps_flags_and_checkpoints(sessions):
    with sessions.begin() as s:
        campaign, round_, gen_ids = seeded_generations(s)
        with pytest.raises(StoreError, match=r"training_run\.round_id: round \d+ has no"):
            training_run_of(s, round_.id)
        run = start_training_run(s, round_.id, {"lambda": 1.1})
        assert training_run_of(s, round_.id).id == run.id
        add_training_steps(s, run.id, [{"step": 2, **STEP}, {"step": 1, **STEP, "loss": 1.4}])
        flags = {
            "generation_id": gen_ids[0],
            "positions": [2, 5],
            "token_ids": [11, 42],
            "ratios": [1.5, 3.0],
        }
        (flag_id,) = add_flagged_tokens(s, run.id, [flags])
        v0 = add_checkpoint(s, campaign.id, 0, "/ckpt/v0", "a" * 64, CheckpointKind.FULL)
        v1 = add_checkpoint(
            s, campaign.id, 1, "/ckpt/v1", "b" * 64, CheckpointKind.FULL, parent_id=v0
        )
        other, _, _ = campaign_with_round(s, "other")  # a later version of another campaign
        add_checkpoint(s, other.id, 5, "/other/v5", "d" * 64, CheckpointKind.FULL)
        finish_training_run(s, run, v1)
    with sessions.begin() as s:  # a restarted round continues the same run, steps idempotent
        again = start_training_run(s, round_.id, {"lambda": 1.1})
        assert again.id == run.id
        add_training_steps(s, run.id, [{"step": 2, **STEP}])
        steps = s.get_one(TrainingRun, run.id).steps
        assert [(st.step, st.loss) for st in steps] == [(1, 1.4), (2, 1.2)]  # in step order
        assert add_flagged_tokens(s, run.id, [flags]) == [flag_id]
        with pytest.raises(ConflictError, match=r"flagged_tokens\.ratios"):
            add_flagged_tokens(s, run.id, [{**flags, "ratios": [1.5, 2.0]}])
        assert latest_checkpoint(s, campaign.id).version == 1
        assert latest_checkpoint(s, campaign.id).parent.location == "/ckpt/v0"
        assert checkpoint_of(s, campaign.id, 0).location == "/ckpt/v0"
        assert checkpoint_of(s, campaign.id, 2) is None
        with pytest.raises(StoreError, match="hyperparameters"):
            start_training_run(s, round_.id, {"lambda": 2.0})
    with pytest.raises(ConflictError, match=r"checkpoint\.sha256"), sessions.begin() as s:
        add_checkpoint(s, campaign.id, 1, "/ckpt/v1", "c" * 64, CheckpointKind.FULL)


def test_eval_items_are_unique_per_instruction_and_summary_is_kept(sessions):
    with sessions.begin() as s:
        _, round_, _ = seeded_generations(s)
        run = start_eval_run(s, round_.id, "held-out", "rules", "round-0")
        items = [
            {"instruction": f"q{i}", "output": "o", "reference_output": "r", "preference": 2.0}
            for i in range(4)
        ]
        ids = add_eval_items(s, run.id, items)
        assert add_eval_items(s, run.id, items[:2]) == ids[:2]
        finish_eval_run(s, run, win_rate=75.0, standard_error=21.6, n=4, avg_length=1.0)
    with sessions() as s:
        stored = s.get(EvalRun, run.id)
        assert (stored.win_rate, stored.n, len(stored.items)) == (75.0, 4, 4)
        assert start_eval_run(s, round_.id, "held-out", "rules", "round-0").id == run.id
    with pytest.raises(StoreError, match="win_rate"), sessions.begin() as s:
        finish_eval_run(s, s.get(EvalRun, run.id), win_rate=140.0)


def test_eval_items_keep_their_tally_and_the_run_its_ifeval_summary(sessions):
    with sessions.begin() as s:
        # stored before the baseline: a later round's run and another campaign's round 0
        _, elsewhere = campaign_with_round(s, "other")[:2]
        add_eval_items(
            s,
            start_eval_run(s, elsewhere.id, "builtin_held_out", "rules", "round 0").id,
            [{"instruction": "q0", "output": "elsewhere", "reference_output": "o"}],
        )
        campaign, first, _ = seeded_generations(s)
        later = ensure_round(s, campaign, 1)
        run = start_eval_run(s, later.id, "builtin_held_out", "rules", "round 0")
        add_eval_items(
            s, run.id, [{"instruction": "q0", "output": "later", "reference_output": "o"}]
        )
        baseline = start_eval_run(s, first.id, "builtin_held_out", "rules", "round 0")
        add_eval_items(s, baseline.id, [
            {"instruction": "q0", "output": "o", "reference_output": "o", "preference": 1.5,
             "finish_reason": "length", "constraints": 2, "strict_met": 1, "loose_met": 2},
            {"instruction": "from a file", "output": "o", "reference_output": "o",
             "preference": 1.5, "finish_reason": "stop"},
        ])  # fmt: skip
        finish_eval_run(
            s, run, win_rate=60.0, decisive_win_rate=75.0, prompt_strict=40.0,
            prompt_loose=55.5, instruction_strict=50.0, instruction_loose=62.5, truncated=20.0,
            mcnemar_b=10, mcnemar_c=2, mcnemar_p=0.0386,
        )  # fmt: skip
    with sessions() as s:
        items = {i.instruction: i for i in first_round_items(s, campaign.id, "builtin_held_out")}
        assert (items["q0"].finish_reason, items["q0"].constraints, items["q0"].strict_met,
                items["q0"].loose_met) == ("length", 2, 1, 2)  # fmt: skip
        unknown = items["from a file"]
        assert (unknown.constraints, unknown.strict_met, unknown.loose_met) == (None, None, None)
        assert first_round_items(s, campaign.id, "another set") == []
        assert {i.eval_run_id for i in items.values()} == {baseline.id}
        assert first_round_outputs(s, campaign.id, "builtin_held_out") == {
            sha256_text("q0"): "o",
            sha256_text("from a file"): "o",
        }
        stored = s.get_one(EvalRun, run.id)
        assert (stored.decisive_win_rate, stored.prompt_strict, stored.prompt_loose,
                stored.instruction_strict, stored.instruction_loose, stored.truncated,
                stored.mcnemar_b, stored.mcnemar_c, stored.mcnemar_p) == (
            75.0, 40.0, 55.5, 50.0, 62.5, 20.0, 10, 2, 0.0386)  # fmt: skip
        assert s.get_one(EvalItem, items["q0"].id).eval_run_id == baseline.id
