"""Compile time of a whole model for one decode stage (issue goal: Mixtral-8x7B, 32 layers,
batch 128, < 1 s). Prints one JSON line per run; the median of the runs is the figure.

    .venv/bin/python benchmarks/compile_time.py [--model mixtral-8x7b] [--batch 128] [--ctx 1024]
        [--tp 4] [--device duplex] [--policy duplex] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import time

from opbsim.compiler import compile_graph
from opbsim.hardware import get_device
from opbsim.workloads import Stage, build_model, load_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="mixtral-8x7b")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--tp", type=int, default=4)
    ap.add_argument("--device", default="duplex")
    ap.add_argument("--policy", default="duplex")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    model, device = load_model(args.model), get_device(args.device)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        graph = build_model(model, Stage.decode(args.batch, args.ctx), tp=args.tp)
        compiled = compile_graph(graph, device, args.policy)
        times.append(time.perf_counter() - t0)
    print(json.dumps({
        "model": args.model, "layers": model.num_layers, "batch": args.batch, "ctx": args.ctx, "tp": args.tp,
        "device": args.device, "policy": args.policy, "instructions": len(compiled.program.instructions),
        "compile_s_median": round(statistics.median(times), 3), "compile_s_min": round(min(times), 3),
        "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "python": platform.python_version(), "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
