"""CUT on the real bundled model: a few steps on a handful of judged examples move the
right probabilities, and the checkpoint reloads exactly.

The unlikelihood gradient on a flagged token is alpha * p / (1 - p): small while the
token is unlikely, while the MLE on the same response in the judged context lifts it
through shared weights. On six examples the flagged tokens fall clearly only with a
larger alpha and a dozen steps, hence alpha=4 here (measured: -2.3 -> -3.9 nats)."""

import torch
from transformers import AutoModelForCausalLM

from cut.checkpoint import save_merged
from cut.config import CUTConfig
from cut.datafile import load_judged_file
from cut.evaluate import measure
from cut.modeling import load_policy
from cut.trainer import train_cut


def sample_negatives(n):
    from pathlib import Path

    sample = Path(__file__).parents[2] / "campaigns" / "data" / "offline-sample.json"
    return [e for e in load_judged_file(sample).examples if e.polarity == "negative"][:n]


def test_cut_moves_flagged_and_align_n_tokens_and_checkpoint_reloads(smollm2_dir, tmp_path):
    examples = sample_negatives(6)
    config = CUTConfig(
        learning_rate=1e-3, alpha=4.0, epochs=4, batch_size=2, micro_batch_size=2, lora_dropout=0.0
    )
    model, tokenizer = load_policy(str(smollm2_dir), config)
    before = measure(model, tokenizer, examples, config)
    assert 0 < before.flagged_fraction < 1

    model, result = train_cut(model, tokenizer, examples, config)
    after = measure(model, tokenizer, examples, config, flagged=before.flagged)
    assert len(result.steps) == 12 and all(s.n_flagged > 0 for s in result.steps)
    assert after.flagged_logp < before.flagged_logp - 0.1  # (a) flagged tokens, plain context
    assert after.align_n_logp > before.align_n_logp + 0.1  # (b) Align-N tokens, judged context

    out = save_merged(model, tokenizer, tmp_path / "ckpt", config, step=len(result.steps))
    merged = model.merge_and_unload()  # save_merged merged in place; same weights
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ids = tokenizer("What is 7 multiplied by 8?", return_tensors="pt").input_ids
    merged.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, merged(ids).logits, atol=0, rtol=0)
