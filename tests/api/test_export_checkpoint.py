"""`cutloop export NAME --round N --to DIR` on the finished tiny campaign: the checkpoint
with a model card `huggingface_hub` reads (the right round, its base model and scores)
and the campaign's config, loadable by transformers as it is."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM

from tests.api.served import FINISHED

CUTLOOP = str(Path(sys.executable).with_name("cutloop"))


@pytest.mark.parametrize("finished_store", ["sqlite"], indirect=True)
def test_an_exported_checkpoint_describes_itself_and_loads(finished_store, tmp_path):
    env = {**os.environ, "CUTLOOP_DATABASE_URL": finished_store.database_url}
    target = tmp_path / "export"

    def export(index: int, to: Path) -> subprocess.CompletedProcess:
        command = [CUTLOOP, "export", FINISHED, "--round", str(index), "--to", str(to)]
        return subprocess.run(command, env=env, capture_output=True, text=True)

    done = export(2, target)
    assert done.returncode == 0, done.stderr
    card = ModelCard.load(target / "README.md")
    config = yaml.safe_load((target / "cutloop-campaign.yaml").read_text())
    assert card.data.base_model == config["policy"] and "cutloop" in card.data.tags
    assert f"# {FINISHED}, round 2" in card.text and "P-strict" in card.text
    AutoModelForCausalLM.from_pretrained(target)
    again = export(2, target)
    assert again.returncode == 2 and "exists" in again.stderr
    missing = export(0, tmp_path / "none")
    assert missing.returncode == 2 and "no checkpoint in round 0" in missing.stderr
