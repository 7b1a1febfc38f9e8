"""The error of stage-shape bucketing: the same serving runs with every stage compiled as it is
(``steps_per_octave = 0``) and with buckets of 4, 8 and 16 steps per power of two.

Mixtral-8x7B on 4 devices, closed loop, batch 16, 48 requests, seed 0, Gaussian lengths: short
(256 +- 64 prompt, 128 +- 32 output tokens) and long-context (2048 +- 512 prompt, 96 +- 24 output
tokens, where decode attention weighs more); on `duplex` (policy duplex) and `h100` (xpu-only).

    .venv/bin/python benchmarks/bucketing_error.py
"""

from __future__ import annotations

import time

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.serving import ServingConfig, simulate
from opbsim.emulator.stage_timer import Bucketing, StageTimer
from opbsim.hardware import get_device
from opbsim.workloads import GaussianLengths, closed_loop, get_preset

METRICS = ("tokens_per_s", "tbt_p50_ms", "tbt_p99_ms", "ttft_p50_ms", "e2e_p50_s", "energy_per_token_mJ")


def main() -> None:
    model = get_preset("mixtral-8x7b")
    scenarios = {"short": closed_loop(16, GaussianLengths(256, 64, 128, 32), num_requests=48, seed=0),
                 "long": closed_loop(16, GaussianLengths(2048, 512, 96, 24), num_requests=48, seed=0)}
    print("| lengths | device | buckets per octave | shapes compiled | wall s | " + " | ".join(METRICS) + " |")
    print("|---" * (5 + len(METRICS)) + "|")
    for (name, scenario), (device, policy) in ((s, d) for s in scenarios.items()
                                                 for d in (("duplex", "duplex"), ("h100", "xpu-only"))):
        cluster = Cluster.from_nodes(device=get_device(device), policy=policy, devices_per_node=4)
        exact = None
        for steps in (0, 16, 8, 4):
            start = time.perf_counter()
            timer = StageTimer(model, cluster, bucketing=Bucketing(steps))
            result = simulate(model, cluster, scenario, ServingConfig(batch=16), timer=timer)
            wall = time.perf_counter() - start
            summary = result.summary()
            exact = exact or summary
            cells = [f"{summary[m]:.4g}" if steps == 0 else f"{100 * (summary[m] / exact[m] - 1):+.2f}%"
                     for m in METRICS]
            head = f"| {name} | {device} | {steps or 'exact'} | {result.compiled_shapes} | {wall:.1f} | "
            print(head + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
