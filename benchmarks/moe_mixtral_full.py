"""A full-size Mixtral-8x7B MoE layer (hidden 4096, expert FFN 14336, 8 experts, top-2) for 64
tokens, executed functionally with exact arithmetic: wall time, peak memory, GFLOP/s.

    python benchmarks/moe_mixtral_full.py [--check] [--json PATH]

The layer is the ``moe`` validation case at full size (opbsim/emulator/validation/moe.py): a
Mixtral-shaped decoder layer, compiled for Duplex (specialised on the routing the numerics
definition computes) and executed, on seeded random bf16 weights held in emulated HBM (2 bytes
each). The figures are those of the whole decoder layer's program (attention included, a small
part at this size). The numerics definition of the layer (opbsim/emulator/layer_values.py) is
computed on every run (it routes the tokens); ``--check`` also compares every output's bits. The
fp32 reference points are measured in the same run: numpy's sgemm (another summation order) on a
2048^3 product, and the nominal peak, cores x clock x 32 FLOP per cycle (two 256-bit multiply-
capable pipes and two add pipes per Zen 4 core, which reach the same 32 FLOP/cycle with or
without fused multiply-add).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import numpy as np

from opbsim.emulator import kernels, validation
from opbsim.emulator.validation import moe


def _peak_rss_GiB() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _cpu_MHz() -> float:
    try:
        with open("/proc/cpuinfo") as f:
            return max(float(line.split(":")[1]) for line in f if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        return float("nan")


def _sgemm_gflops(n: int = 2048, reps: int = 3) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(reps))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare every output bit with the numerics definition")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", dest="json_path", help="also write the figures to this JSON file")
    args = ap.parse_args()

    cfg = moe.MoEConfig(tokens=args.tokens, hidden=4096, ffn=14336, experts=8, top_k=2)
    warm = moe.MoEConfig(tokens=8, hidden=64, ffn=128, experts=8, top_k=2)
    validation.compiled_layer(warm.model(), warm.stage(), args.seed)  # numba kernels compiled outside the timing

    t0 = time.perf_counter()
    run = validation.compiled_layer(cfg.model(), cfg.stage(), args.seed)
    total = time.perf_counter() - t0
    stats = run.stats
    exec_s = stats.seconds
    flops = stats.flops
    gemm = [stats.by_mnemonic[m] for m in ("gemm", "gemm_acc") if m in stats.by_mnemonic]
    gemm_flops, gemm_s = sum(g.flops for g in gemm), sum(g.seconds for g in gemm)
    sgemm = _sgemm_gflops()
    cores = os.cpu_count() or 1
    peak = cores * _cpu_MHz() / 1e3 * 32

    fig = {
        "machine": f"{platform.processor() or platform.machine()}, {cores} cores, {_cpu_MHz():.0f} MHz",
        "layer": cfg.shape,
        "tokens_per_expert": np.bincount(validation.expected(run, "L0.topk_ids").ravel(), minlength=8).tolist(),
        "weights_GiB": 8 * 3 * 4096 * 14336 * 2 / 2**30,
        "weight_generation_s": run.generate_s,
        "reference_s": run.reference_s,
        "compile_s": run.compile_s,
        "execution_s": exec_s,
        "whole_run_s": total,
        "instructions": stats.instructions,
        "flops": flops,
        "gflops_per_s": flops / exec_s / 1e9,
        "gemm_flops": gemm_flops,
        "gemm_gflops_per_s": gemm_flops / gemm_s / 1e9,
        "numpy_sgemm_2048_gflops_per_s": sgemm,
        "nominal_fp32_peak_gflops_per_s": peak,
        "kernel_threads": kernels.thread_count(),
        "seconds_by_mnemonic": {m: round(o.seconds, 4) for m, o in stats.by_mnemonic.items()},
    }
    if args.check:
        fig["bit_exact"] = all(
            np.array_equal(run.got(name).view(np.uint8), validation.expected(run, name).view(np.uint8))
            for name in ("L0.h", "L0.ffn_out", "L0.topk_ids", "L0.topk_weights"))
    fig["peak_rss_GiB"] = _peak_rss_GiB()

    for key, value in fig.items():
        print(f"{key:32s} {value:.4g}" if isinstance(value, float) else f"{key:32s} {value}")
    print(f"{'fraction of numpy sgemm':32s} {fig['gemm_gflops_per_s'] / sgemm:.2f}")
    print(f"{'fraction of nominal fp32 peak':32s} {fig['gemm_gflops_per_s'] / peak:.2f}")
    if args.json_path:
        with open(args.json_path, "w") as f:
            json.dump(fig, f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
