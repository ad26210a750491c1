"""docs/configuration.md is what `cutloop config reference` prints, every setting says
what it does, and `cutloop config example` is a campaign file of the defaults."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from api.cli import app
from orchestrator.config import CampaignConfig
from orchestrator.config_reference import FOLLOWS, Setting, reference_markdown, settings

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "configuration.md"


def _every_setting(model=CampaignConfig, prefix: str = "") -> list[Setting]:
    found = []
    for setting in settings(model, prefix):
        found.append(setting)
        for nested in [setting.model, *setting.variants.values()]:
            if nested is not None:
                found += _every_setting(nested, f"{setting.path}.")
    return found


def test_the_reference_is_current():
    assert REFERENCE.read_text() == reference_markdown(), (
        "docs/configuration.md is stale: run `cutloop config reference -o docs/configuration.md`"
    )


def test_every_setting_and_kind_is_described_by_the_name_a_file_uses():
    every = _every_setting()
    undescribed = [s.path for s in every if not s.description]
    assert not undescribed, f"settings without a description: {undescribed}"
    paths = {s.path for s in every}
    assert {"cut.lambda", "judge.base_url", "judge.template", "instructions.path"} <= paths
    assert "cut.lam" not in paths
    assert set(FOLLOWS) <= paths
    for s in every:
        for kind, variant in s.variants.items():
            assert variant.model_fields["kind"].description, f"{s.path} kind {kind}"


def test_the_example_is_a_campaign_of_the_defaults():
    result = CliRunner().invoke(app, ["config", "example"])
    assert result.exit_code == 0, result.output
    loaded = CampaignConfig.model_validate(yaml.safe_load(result.output))
    assert loaded == CampaignConfig(name="my-campaign")
    assert "# or, instead:" in result.output  # the other judges and instruction sources


def test_the_example_follows_the_campaign_seed():
    result = CliRunner().invoke(app, ["config", "example"])
    text = result.output.replace("\nseed: 42\n", "\nseed: 7\n")
    loaded = CampaignConfig.model_validate(yaml.safe_load(text))
    assert loaded.cut.seed == 7 and loaded.generator.sampling.seed == 7


def test_reference_writes_the_file(tmp_path):
    written = tmp_path / "configuration.md"
    result = CliRunner().invoke(app, ["config", "reference", "-o", str(written)])
    assert result.exit_code == 0, result.output
    assert written.read_text() == reference_markdown()
