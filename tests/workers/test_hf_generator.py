"""The HF backend with tiny random models: swap semantics without vLLM."""

import pytest
import torch
from safetensors.torch import save_file

from tests.tiny_models import char_tokenizer, tiny_llama
from workers.engine import EngineConfig, SamplingConfig, SwapError
from workers.generator import Generator

GREEDY = SamplingConfig(temperature=0, max_new_tokens=6)


@pytest.fixture
def model_dir(tmp_path):
    tokenizer = char_tokenizer(chat=True)
    tiny_llama(len(tokenizer)).save_pretrained(tmp_path / "v0")
    tokenizer.save_pretrained(tmp_path / "v0")
    tiny_llama(len(tokenizer), seed=7).save_pretrained(tmp_path / "v1")
    return tmp_path


def test_swap_changes_outputs_and_records_versions(model_dir):
    generator = Generator(EngineConfig(model=str(model_dir / "v0"), backend="hf"))
    before = generator.generate(["Say hi.", "Add 2 and 3."], GREEDY)
    assert [c[0].policy_version for c in before] == [0, 0]
    assert generator.update_weights(str(model_dir / "v1"), version=1) == 1
    after = generator.generate(["Say hi.", "Add 2 and 3."], GREEDY)
    assert [c[0].policy_version for c in after] == [1, 1]
    assert [c[0].text for c in after] != [c[0].text for c in before]
    assert all(c[0].completion_tokens <= 6 and c[0].prompt_tokens > 0 for c in after)


def test_a_corrupt_checkpoint_is_refused_and_the_old_weights_keep_serving(model_dir):
    generator = Generator(EngineConfig(model=str(model_dir / "v0"), backend="hf"))
    expected = generator.generate(["Say hi."], GREEDY)
    broken = model_dir / "broken"
    broken.mkdir()
    (broken / "model.safetensors").write_bytes(b"\x10\x00\x00\x00not a header")
    wrong_shape = model_dir / "wrong"
    wrong_shape.mkdir()
    save_file({"model.embed_tokens.weight": torch.zeros(3, 3)}, wrong_shape / "model.safetensors")
    for bad, reason in ((broken, "unreadable"), (wrong_shape, "missing tensors|shape")):
        with pytest.raises(SwapError, match=reason):
            generator.update_weights(str(bad), version=1)
        assert generator.version() == 0
        assert generator.generate(["Say hi."], GREEDY) == expected


def test_n_samples_per_prompt_with_a_seed(model_dir):
    generator = Generator(EngineConfig(model=str(model_dir / "v0"), backend="hf"))
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=5, n=3, seed=1)
    first = generator.generate(["Say hi."], sampling)
    assert [c.sample_index for c in first[0]] == [0, 1, 2]
    assert generator.generate(["Say hi."], sampling) == first


def lora_adapter(model_dir, out):
    """A CUT-trained LoRA adapter on the v0 model, and the merged model for reference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cut.checkpoint import save_adapter
    from cut.config import CUTConfig
    from cut.examples import JudgedExample, Polarity
    from cut.trainer import train_cut

    tokenizer = AutoTokenizer.from_pretrained(model_dir / "v0")
    config = CUTConfig(
        learning_rate=5e-2,
        lora_dropout=0.0,
        precision="fp32",
        batch_size=1,
        micro_batch_size=1,
        epochs=3,
    )
    example = JudgedExample("Say hi.", "hello there", "Too long.", Polarity.NEGATIVE)
    model, _ = train_cut(
        AutoModelForCausalLM.from_pretrained(model_dir / "v0"), tokenizer, [example], config
    )
    save_adapter(model, out, config, step=3)
    return model.merge_and_unload().eval(), tokenizer


def test_a_lora_adapter_is_served_on_top_of_the_base(model_dir):
    merged, tokenizer = lora_adapter(model_dir, model_dir / "adapter")
    generator = Generator(EngineConfig(model=str(model_dir / "v0"), backend="hf", max_lora_rank=16))
    base = generator.generate(["Say hi."], GREEDY)
    generator.update_weights(str(model_dir / "v1"), version=1)  # the adapter goes on v0 again
    assert generator.update_weights(str(model_dir / "adapter"), version=2) == 2
    served = generator.generate(["Say hi."], GREEDY)[0][0]
    prompt = generator.template.plain("Say hi.")
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        expected = merged.generate(**ids, max_new_tokens=6, do_sample=False)
    assert served.text == tokenizer.decode(
        expected[0, ids["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert served.policy_version == 2 and served.text != base[0][0].text


def test_adapters_beyond_the_engine_limits_are_refused(model_dir):
    lora_adapter(model_dir, model_dir / "adapter")
    no_lora = Generator(EngineConfig(model=str(model_dir / "v0"), backend="hf"))
    with pytest.raises(SwapError, match="without LoRA"):
        no_lora.update_weights(str(model_dir / "adapter"), version=1)
    small = Generator(EngineConfig(model=str(model_dir / "v0"), backend="hf", max_lora_rank=8))
    with pytest.raises(SwapError, match="rank 16 exceeds max_lora_rank 8"):
        small.update_weights(str(model_dir / "adapter"), version=1)
    assert small.version() == 0


def test_a_generation_in_flight_finishes_on_the_old_weights(model_dir, ray_local):
    from workers.placement import start_generators

    (actor,) = start_generators(EngineConfig(model=str(model_dir / "v0"), backend="hf"))
    prompts = [f"Say hi {i}." for i in range(16)]
    old = ray_local.get(actor.generate.remote(prompts, GREEDY))
    in_flight = actor.generate.remote(prompts, GREEDY)  # queued before the swap
    swapped = actor.update_weights.remote(str(model_dir / "v1"), 1)
    after = actor.generate.remote(prompts, GREEDY)
    assert ray_local.get(in_flight) == old  # same texts, version 0
    assert ray_local.get(swapped) == 1
    assert all(c[0].policy_version == 1 for c in ray_local.get(after))
    ray_local.kill(actor)
