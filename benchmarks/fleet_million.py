"""A day of cluster traffic: a million open-loop requests on 64 replicas of Mixtral-8x7B, each on
1 x 4 Duplex devices (tp 4, policy duplex), batch 64 per replica, round-robin router, Poisson
arrivals at 10 requests/s per replica, Gaussian lengths 1024 +- 256 prompt and 256 +- 64 output
tokens, prefill chunks of 8192 tokens, 8 shape buckets per octave (issue 21; goal <= 5 min and
<= 2 GiB on 2 cores).

Modes:
- ``--mode fast`` (default): the run as ``opbsim simulate --replicas 64 --workers 2`` does it:
  replicas fanned out over 2 processes, runs of identical decode stages collapsed, stage shapes
  memoised. Wall time includes compiling every shape; peak memory is the largest summed resident
  set of this process and its workers, sampled every 0.2 s.
- ``--mode check``: the first ``--prefix`` requests (default 50,000) served twice, fast and
  without the shortcuts (one process, every stage one step of the event loop), and the relative
  difference of throughput and p50/p99 TBT and TTFT (goal: within 1%).

    .venv/bin/python benchmarks/fleet_million.py --mode fast --requests 1000000
    .venv/bin/python benchmarks/fleet_million.py --mode check --prefix 50000
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import psutil

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.fleet import FleetConfig
from opbsim.emulator.fleet_run import simulate_fleet
from opbsim.hardware import get_device
from opbsim.workloads import GaussianLengths, get_preset
from opbsim.workloads.parallel import Parallelism
from opbsim.workloads.traces import poisson_trace

REPLICAS = 64
METRICS = ("tokens_per_s", "tbt_p50_ms", "tbt_p99_ms", "ttft_p50_ms", "ttft_p99_ms")


class PeakRss:
    """The largest summed RSS of this process and its children, sampled in a thread."""

    def __init__(self) -> None:
        self.peak_B = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_B = max(self.peak_B, total)
            time.sleep(0.2)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(requests: int, *, workers: int, collapse: bool):
    model = get_preset("mixtral-8x7b")
    cluster = Cluster(device=get_device("duplex"), policy="duplex", parallel=Parallelism.of(tp=4))
    trace = poisson_trace(10.0 * REPLICAS, GaussianLengths(1024.0, 256.0, 256.0, 64.0), num_requests=requests, seed=0)
    config = FleetConfig(replicas=REPLICAS, batch=64, prefill_chunk_tokens=8192, workers=workers, collapse=collapse)
    start = time.perf_counter()
    result = simulate_fleet(model, cluster, trace, config)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("fast", "check"), default="fast")
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--prefix", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    if args.mode == "fast":
        with PeakRss() as rss:
            seconds, r = run(args.requests, workers=args.workers, collapse=True)
        print(f"{args.requests:,} requests, {REPLICAS} replicas: wall {seconds:.1f} s, peak RSS "
              f"{rss.peak_B / 2**20:.0f} MiB (all processes), {r.stages:,} stages, {r.compiled_shapes} shapes "
              f"compiled; {r.tokens_per_s:.0f} tokens/s, TBT p50/p99 {r.tbt_p50_ms:.3f}/{r.tbt_p99_ms:.3f} ms, "
              f"TTFT p50/p99 {r.ttft_p50_ms:.1f}/{r.ttft_p99_ms:.1f} ms, makespan {r.duration_s:.0f} s")
    else:
        t_fast, fast = run(args.prefix, workers=args.workers, collapse=True)
        t_ref, ref = run(args.prefix, workers=1, collapse=False)
        print(f"{args.prefix:,} requests: fast {t_fast:.1f} s, reference {t_ref:.1f} s")
        print("| metric | reference | fast | relative difference |")
        print("|---|---|---|---|")
        for m in METRICS:
            a, b = getattr(ref, m), getattr(fast, m)
            print(f"| {m} | {a:.6g} | {b:.6g} | {(b - a) / a:+.2e} |")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
