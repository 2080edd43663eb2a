"""Run every benchmark in one go and print their tables (the source of docs/benchmarks.md).

make bench        # or: .venv/bin/python bench/run_all.py
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_dead_service
import bench_http_throughput
import bench_pipeline_overhead


def main() -> None:
    print(f"# python {platform.python_version()} on {platform.machine()}, {platform.system()}\n")
    for title, module in (
        ("Per-call overhead of the resilience pipeline", bench_pipeline_overhead),
        ("Throughput of AsyncHTTPClient vs the raw clients", bench_http_throughput),
        ("Service down: time to the first fast failure", bench_dead_service),
    ):
        print(f"## {title}\n")
        module.main()
        print()


if __name__ == "__main__":
    main()
