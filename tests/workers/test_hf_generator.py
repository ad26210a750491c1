"""The HF backend with tiny random models: swap semantics without vLLM."""

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import char_tokenizer, tiny_llama
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
