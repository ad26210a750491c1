"""OpenAI judge throughput against the test server at 200 ms latency: 500 judgments at
concurrency 1, 8, 32 and 64, against the ideal of concurrency / latency requests per
second. Each concurrency runs three ways side by side: in one call with the cache and
spending in files (durable budgets), the same with both in memory, and `stage_`: in
calls of `--batch` answers, as the judge stage hands its worker one commit's worth at a
time (each call waits for its slowest answer before the next starts). The server runs
in its own process, as a real endpoint would. Prints one JSON line.

    .venv/bin/python bench/judge_throughput.py [--n 500] [--latency 0.2] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judge.base import JudgeRequest, JudgmentStatus
from judge.cache import JudgmentCache
from judge.openai_judge import OpenAIJudge, OpenAIJudgeConfig
from judge.spending import Spending


def judged_per_s(
    config: OpenAIJudgeConfig, n: int, files: Path | None, batch: int | None = None
) -> float:
    """Requests per second judging `n` new answers in one call, or `batch` at a time as
    the judge stage calls its worker (orchestrator/collect.py: `commit_every` answers);
    with `files`, the cache and spending live there as in a campaign."""
    cache, spending = None, None
    if files is not None:
        files.mkdir()
        cache, spending = JudgmentCache(files / "cache.jsonl"), Spending(files / "spending.jsonl")
    judge = OpenAIJudge(config, cache, spending)
    tag = f"{config.concurrency}-{batch}-{files is not None}"
    requests = [JudgeRequest(f"q{tag}-{i}", f"answer {i}") for i in range(n)]
    step = batch or n
    started = time.perf_counter()
    results = [r for i in range(0, n, step) for r in judge.judge(requests[i : i + step])]
    seconds = time.perf_counter() - started
    assert all(r.status == JudgmentStatus.OK for r in results)
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32, 64])
    parser.add_argument(
        "--batch", type=int, default=64, help="answers per call in stage_ (commit_every's default)"
    )
    args = parser.parse_args()
    os.environ.setdefault("CUTLOOP_BENCH_KEY", "sk-bench")
    out: dict[str, float | int] = {"n": args.n, "latency_s": args.latency}
    command = [sys.executable, "-m", "tests.judge.fake_openai", "--latency", str(args.latency)]
    root = Path(__file__).resolve().parents[1]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as server:
        base_url = server.stdout.readline().strip()  # printed once the socket listens
        warm_up = OpenAIJudgeConfig(base_url=base_url, api_key_env="CUTLOOP_BENCH_KEY")
        OpenAIJudge(warm_up).judge([JudgeRequest("warm-up", "imports and first connection")])
        scratch = Path(tempfile.mkdtemp(prefix="cutloop-judge-bench-"))
        for concurrency in args.concurrency:
            config = OpenAIJudgeConfig(
                base_url=base_url, api_key_env="CUTLOOP_BENCH_KEY", concurrency=concurrency
            )
            ideal = concurrency / args.latency
            durable = judged_per_s(config, args.n, scratch / f"c{concurrency}")
            in_memory = judged_per_s(config, args.n, None)
            out[f"requests_per_s_at_{concurrency}"] = durable
            out[f"ratio_to_ideal_at_{concurrency}"] = durable / ideal
            out[f"in_memory_ratio_to_ideal_at_{concurrency}"] = in_memory / ideal
            staged = judged_per_s(config, args.n, scratch / f"s{concurrency}", args.batch)
            out[f"stage_ratio_to_ideal_at_{concurrency}"] = staged / ideal
            print(f"[bench] concurrency {concurrency}: {durable:.1f} req/s "
                  f"({in_memory:.1f} in memory)", file=sys.stderr)  # fmt: skip
        server.terminate()
        shutil.rmtree(scratch)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
