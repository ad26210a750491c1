"""How often `precision: auto` picks the same matmul precision with the CPUs busy: the
probe (least CPU time of 8 one-thread matmuls per dtype, in turn) against the one it
replaced (wall time of 4 matmuls per dtype on all threads, summed, bf16's then fp32's),
each run `--trials` times while a process spins on each core, as generation does beside
the trainer. The reference is the probe's answer on quiet cores. Prints one JSON line.

    .venv/bin/python bench/precision_probe.py [--trials 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cut.precision import cpu_bf16_is_faster, fastest_matmul_seconds

SPIN = "while True: pass"


def summed_wall_times_pick_bf16(size: int = 384, repeats: int = 4) -> bool:
    """The replaced probe: bf16 if its summed wall times beat fp32's."""
    seconds = {}
    for dtype in (torch.bfloat16, torch.float32):
        a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        seconds[dtype] = time.perf_counter() - start
    return seconds[torch.bfloat16] < seconds[torch.float32]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    quiet = fastest_matmul_seconds(repeats=50)
    reference = quiet[torch.bfloat16] < quiet[torch.float32]
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(os.cpu_count() or 2)]
    try:
        agree = {"replaced": 0, "probe": 0}
        probe_ms = []
        for _ in range(args.trials):  # in turn, so both see the same load
            agree["replaced"] += summed_wall_times_pick_bf16() == reference
            started = time.perf_counter()
            agree["probe"] += cpu_bf16_is_faster.__wrapped__() == reference  # uncached
            probe_ms.append((time.perf_counter() - started) * 1e3)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    print(
        json.dumps(
            {
                "quiet_pick": "bf16" if reference else "fp32",
                "quiet_bf16_over_fp32_s": quiet[torch.bfloat16] / quiet[torch.float32],
                "trials": args.trials,
                "replaced_probe_agrees": agree["replaced"] / args.trials,
                "probe_agrees": agree["probe"] / args.trials,
                "probe_median_ms_busy": statistics.median(probe_ms),
            }
        )
    )


if __name__ == "__main__":
    main()
