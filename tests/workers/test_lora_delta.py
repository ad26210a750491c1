"""LoRA deltas: the factors a round trained, merged by the generator into its own copy
of the weights, give exactly the trainer's merged checkpoint (GPT-2's inputs-first
weights too); a delta for other weights than those served is refused; weights sent as
tensors serve what the files do."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity
from tests.orchestrator.campaigns import save_tiny_policy
from tests.tiny_models import char_tokenizer, tiny_llama
from workers.engine import EngineConfig, SamplingConfig, SwapError
from workers.generator import Generator
from workers.lora_delta import load_delta, merged
from workers.trainer import Trainer

GREEDY = SamplingConfig(temperature=0, max_new_tokens=8)
PROMPTS = ["Say hi.", "Add 2 and 3.", "Name a color."]
EXAMPLES = [
    JudgedExample("Add 2 and 3.", "It is 6.", "Wrong: 2 + 3 is 5.", Polarity.NEGATIVE),
    JudgedExample("Say hi.", "Hi!", "Good.", Polarity.POSITIVE),
]
LORA = CUTConfig(finetuning="lora", lora_r=4, lora_alpha=8, lora_dropout=0.0,
                 lora_target_modules=["gate_proj", "down_proj"], learning_rate=5e-2, epochs=3,
                 batch_size=2, micro_batch_size=2, max_length=128, precision="fp32",
                 **{"lambda": 1.0})  # fmt: skip


@pytest.fixture
def trained(tmp_path, monkeypatch):
    """The v0 model, and two LoRA rounds the trainer wrote on this node: v1 on v0, v2 on v1."""
    monkeypatch.setenv("CUTLOOP_NODE_HOME", str(tmp_path / "node"))
    tokenizer = char_tokenizer(chat=True)
    base = tmp_path / "v0"
    tiny_llama(len(tokenizer)).save_pretrained(base)
    tokenizer.save_pretrained(base)
    trainer = Trainer()
    v1 = trainer.train(str(base), EXAMPLES, LORA, ("c", "id"), 1, 0).checkpoint
    v2 = trainer.train(v1, EXAMPLES, LORA, ("c", "id"), 2, 1).checkpoint
    return base, v1, v2


def test_merging_the_factors_gives_the_trainers_merged_weights_exactly(trained):
    base, v1, _ = trained
    delta = load_delta(v1)
    assert delta.base_version == 0
    assert {n.split(".")[-2] for n in delta.factors} == {"gate_proj", "down_proj"}
    before, after = load_file(str(base / "model.safetensors")), load_file(f"{v1}/model.safetensors")
    ours = merged(before, delta)
    assert all(torch.equal(ours[n], after[n]) for n in delta.factors)
    assert any(not torch.equal(before[n], after[n]) for n in delta.factors)  # it trained
    untouched = set(after) - set(delta.factors)
    assert all(torch.equal(before[n], after[n]) for n in untouched)
    assert delta.nbytes < sum(after[n].nbytes for n in delta.factors)


def test_a_generator_fed_deltas_answers_as_the_merged_checkpoints_do(trained):
    base, v1, v2 = trained
    trainer = Trainer()
    fed = Generator(EngineConfig(model=str(base), backend="hf"))
    assert fed.update_delta(trainer.delta(v1), 1) == 1
    assert fed.update_delta(trainer.delta(v2), 2) == 2
    reference = Generator(EngineConfig(model=str(v2), backend="hf"))
    assert [c[0].text for c in fed.generate(PROMPTS, GREEDY)] == [
        c[0].text for c in reference.generate(PROMPTS, GREEDY)
    ]
    with pytest.raises(SwapError, match="serves v2; the v3 delta applies to v1"):
        fed.update_delta(trainer.delta(v2), 3)
    assert fed.version() == 2


def test_after_whole_weights_the_next_delta_merges_into_the_kept_targets(trained):
    """A resumed campaign: a fresh generator gets v1 whole, then v2 as a delta."""
    base, v1, v2 = trained
    trainer = Trainer()
    resumed = Generator(EngineConfig(model=str(base), backend="hf"))
    with pytest.raises(SwapError, match="applies to v1"):
        resumed.update_delta(trainer.delta(v2), 2)
    resumed.update_files(trainer.weight_files(v1), 1, keep=("gate_proj", "down_proj"))
    assert resumed.update_delta(trainer.delta(v2), 2) == 2
    reference = Generator(EngineConfig(model=str(v2), backend="hf"))
    assert resumed.generate(PROMPTS, GREEDY) == [
        [c.__class__(**{**c.__dict__, "policy_version": 2}) for c in s]
        for s in reference.generate(PROMPTS, GREEDY)
    ]
    without = Generator(EngineConfig(model=str(base), backend="hf"))
    without.update_files(trainer.weight_files(v1), 1)  # no copy kept: a delta cannot merge
    with pytest.raises(SwapError, match="no copy of the v1 weights"):
        without.update_delta(trainer.delta(v2), 2)


def test_a_full_fine_tune_has_no_delta(trained, tmp_path):
    base, _, _ = trained
    full = Trainer().train(
        str(base), EXAMPLES, LORA.model_copy(update={"finetuning": "full"}), ("c", "id"), 3, 0
    )
    with pytest.raises(SwapError, match="no LoRA delta"):
        Trainer().delta(full.checkpoint)


def test_a_gpt2_delta_merges_into_its_inputs_first_weights_as_peft_merges(tmp_path, monkeypatch):
    """GPT-2's Conv1D stores a weight as (inputs, outputs): peft merges (B @ A)^T into
    it, and so must the generators, or a square weight silently gets the wrong update."""
    monkeypatch.setenv("CUTLOOP_NODE_HOME", str(tmp_path / "node"))
    base = save_tiny_policy(tmp_path / "v0", "gpt2", chat=False)
    lora = LORA.model_copy(update={"lora_target_modules": None})  # c_attn, c_fc, c_proj
    v1 = Trainer().train(str(base), EXAMPLES, lora, ("c", "id"), 1, 0).checkpoint
    delta = load_delta(v1)
    assert delta.transposed == set(delta.factors) and len(delta.factors) == 2 * 4
    before, after = load_file(str(base / "model.safetensors")), load_file(f"{v1}/model.safetensors")
    ours = merged(before, delta)
    assert all(torch.equal(ours[n], after[n]) for n in delta.factors)
    assert all(not torch.equal(before[n], after[n]) for n in delta.factors)  # it trained
    fed = Generator(EngineConfig(model=str(base), backend="hf"))
    assert fed.update_delta(Trainer().delta(v1), 1) == 1
    reference = Generator(EngineConfig(model=str(v1), backend="hf"))
    assert [c[0].text for c in fed.generate(PROMPTS, GREEDY)] == [
        c[0].text for c in reference.generate(PROMPTS, GREEDY)
    ]
