"""Child process of test_training_memory: one CUT step on SmolLM2 with the given budget
and checkpointing; prints the process's peak RSS and the estimate, as JSON."""

from __future__ import annotations

import json
import sys

from cut.config import CUTConfig
from cut.examples import JudgedExample, Polarity
from cut.memory import peak_rss_bytes
from cut.modeling import load_policy
from cut.trainer import train_cut
from orchestrator.training_fit import training_memory

WORDS = "the answer is wrong because each step of the sum uses another value".split()


def main(policy: str, max_tokens: int, checkpointing: bool) -> None:
    response = " ".join(WORDS[i % len(WORDS)] for i in range(300))  # ~300 tokens
    examples = [
        JudgedExample(f"Question {i}: add the numbers.", response, "Wrong sum.", Polarity.NEGATIVE)
        for i in range(4)
    ]
    config = CUTConfig(
        batch_size=4, micro_batch_size=4, max_tokens_per_micro_batch=max_tokens,
        gradient_checkpointing=checkpointing, lora_dropout=0.0,
    )  # fmt: skip
    model, tokenizer = load_policy(policy, config)
    train_cut(model, tokenizer, examples, config)
    peak = peak_rss_bytes()
    print(
        json.dumps(
            {"peak_gb": peak / 2**30, "estimate_gb": training_memory(policy, config).total_gb}
        )
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1")
