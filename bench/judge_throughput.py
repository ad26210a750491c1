"""OpenAI judge throughput against the test server at 200 ms latency: 500 judgments at
concurrency 1, 8, 32 and 64, against the ideal of concurrency / latency requests per
second. The server runs in its own process, as a real endpoint would. Prints one JSON
line.

    .venv/bin/python bench/judge_throughput.py [--n 500] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from judge.base import JudgeRequest, JudgmentStatus
from judge.openai_judge import OpenAIJudge, OpenAIJudgeConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 8, 32, 64])
    args = parser.parse_args()
    os.environ.setdefault("CUTLOOP_BENCH_KEY", "sk-bench")
    out: dict[str, float | int] = {"n": args.n, "latency_s": args.latency}
    command = [sys.executable, "-m", "tests.judge.fake_openai", "--latency", str(args.latency)]
    root = Path(__file__).resolve().parents[1]
    with subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, text=True) as server:
        base_url = server.stdout.readline().strip()  # printed once the socket listens
        warm_up = OpenAIJudgeConfig(base_url=base_url, api_key_env="CUTLOOP_BENCH_KEY")
        OpenAIJudge(warm_up).judge([JudgeRequest("warm-up", "imports and first connection")])
        for concurrency in args.concurrency:
            config = OpenAIJudgeConfig(
                base_url=base_url, api_key_env="CUTLOOP_BENCH_KEY", concurrency=concurrency
            )
            requests = [JudgeRequest(f"q{concurrency}-{i}", f"answer {i}") for i in range(args.n)]
            started = time.perf_counter()
            results = OpenAIJudge(config).judge(requests)
            seconds = time.perf_counter() - started
            assert all(r.status == JudgmentStatus.OK for r in results)
            rate = args.n / seconds
            out[f"requests_per_s_at_{concurrency}"] = rate
            out[f"ratio_to_ideal_at_{concurrency}"] = rate / (concurrency / args.latency)
            print(f"[bench] concurrency {concurrency}: {rate:.1f} req/s", file=sys.stderr)
        server.terminate()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
