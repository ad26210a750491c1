"""Child process of test_failures: a real Ray whose memory monitor kills an actor that
keeps allocating; prints the one-line reason the driver would store."""

from __future__ import annotations

import os
import time

import psutil

from orchestrator.failures import one_line

GB = 2**30


def main() -> None:
    memory = psutil.virtual_memory()
    allowed = (memory.total - memory.available + 1.5 * GB) / memory.total  # 1.5 GB more
    os.environ["RAY_memory_usage_threshold"] = f"{min(allowed, 0.95):.3f}"  # noqa: SIM112  (Ray spells it so)
    os.environ["RAY_memory_monitor_refresh_ms"] = "100"  # noqa: SIM112
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=0, max_restarts=0)
    class Hog:
        def eat(self) -> None:
            blocks = []
            for _ in range(200):  # at most 20 GB, 256 MB at a time
                blocks.append(bytearray(256 * 2**20))
                time.sleep(0.05)  # let the monitor sample

    try:
        ray.get(Hog.remote().eat.remote(), timeout=120)
        print("not killed")
    except Exception as error:
        print(one_line(error, "train"))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
