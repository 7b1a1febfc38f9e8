"""Wall time and peak memory of a long serving run: 1,000 closed-loop requests of Mixtral-8x7B on
4 Duplex devices, batch 64, 1024 prompt and 1024 output tokens (issue 6's benchmark; goal <= 10 s).

Each repeat builds a fresh stage timer, so compiling the stage shapes is part of the time. Peak
memory is the process's maximum resident set size (ru_maxrss), imports included.

    .venv/bin/python benchmarks/serving_closed_loop.py --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.serving import ServingConfig, simulate
from opbsim.emulator.stage_timer import StageTimer
from opbsim.hardware import get_device
from opbsim.workloads import FixedLengths, closed_loop, get_preset


def once() -> tuple[float, object]:
    start = time.perf_counter()
    model = get_preset("mixtral-8x7b")
    cluster = Cluster.from_nodes(device=get_device("duplex"), policy="duplex", devices_per_node=4)
    scenario = closed_loop(64, FixedLengths(1024, 1024), num_requests=1000, seed=0)
    result = simulate(model, cluster, scenario, ServingConfig(batch=64, prefill_chunk_tokens=8192),
                      timer=StageTimer(model, cluster))
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeats):
        seconds, result = once()
        times.append(seconds)
    peak_MiB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()[0]
    print(f"stages {result.stages}, shapes compiled {result.compiled_shapes}, {result.tokens_per_s:.1f} tokens/s "
          f"simulated, makespan {result.duration_s:.2f} s")
    print(f"| {time.strftime('%Y-%m-%d')} | {os.cpu_count()}-core {platform.machine()}, Python "
          f"{platform.python_version()} | {load:.1f} | {result.stages:,} | {result.compiled_shapes} | "
          f"{statistics.median(times):.2f} s | {min(times):.2f} s | {peak_MiB:.0f} MiB |")


if __name__ == "__main__":
    main()
