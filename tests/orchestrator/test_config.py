from pathlib import Path

import pytest

from orchestrator.config import CampaignConfigError, load_campaign

CAMPAIGNS = Path(__file__).parents[2] / "campaigns"


def test_shipped_campaigns_load():
    demo = load_campaign(CAMPAIGNS / "demo-cpu.yaml")
    assert (demo.policy, demo.judge.kind, demo.instructions.kind) == ("smollm2", "rules", "builtin")
    paper = load_campaign(CAMPAIGNS / "paper-gpu.yaml")
    assert paper.judge.kind == "openai" and paper.judge.model == "gpt-4"
    assert (paper.cut.lam, paper.cut.alpha, paper.cut.lora_r, paper.cut.learning_rate) == (
        1.1,
        1.0,
        16,
        4e-4,
    )
    assert paper.prompts_per_round == 1000 and paper.cut.align_p_ratio == 0.25
    assert (paper.method, paper.selection.disagreeing_only, paper.generator.sampling.n) == (
        "cut",
        False,
        1,
    )  # the paper's campaign keeps the paper's defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\ncut:\n  lambda: -1\n", "cut.lambda: Input should be greater than 0 (got -1)"),
        ("name: x\nrounds: -1\n", "rounds: Input should be greater than or equal to 0 (got -1)"),
        (
            "name: x\nevaluation:\n  annotator: gpt-judge\n",
            "evaluation: Value error, unknown alpaca_eval annotator 'gpt-judge'",
        ),
        ("name: x\njudge:\n  kind: oracle\n", "judge: Input tag 'oracle' found using 'kind'"),
        ("name: x\njudge:\n  kind: openai\n  concurrency: none\n", "judge.openai.concurrency"),
        (
            "name: x\ngenerator:\n  replica: 2\n",
            "generator.replica: Extra inputs are not permitted (got 2)",
        ),
        ("name: x\ncommit_every: 0\n", "commit_every: Input should be greater than or equal to 1"),
        (
            "name: x\nmax_failed_judgments: 1.5\n",
            "max_failed_judgments: Input should be less than or equal to 1 (got 1.5)",
        ),
        ("rounds: 2\n", "name: Field required"),
        ("name: x\ncut:\n  method: dpo\n", "a campaign sets its training method with the"),
        ("name: x\nmethod: tuned\n", "method: Input should be 'cut', 'sft' or 'dpo'"),
        ("- a\n- b\n", "expected a mapping"),
        ("name: [unclosed\n", "invalid YAML"),
    ],
)
def test_errors_name_the_field_and_the_value(tmp_path, text, message):
    path = tmp_path / "campaign.yaml"
    path.write_text(text)
    with pytest.raises(CampaignConfigError) as raised:
        load_campaign(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert message in str(raised.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(CampaignConfigError, match=r"no-such\.yaml: No such file"):
        load_campaign(tmp_path / "no-such.yaml")
