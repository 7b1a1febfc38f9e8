"""Speed of the executor's block-scaled fp8 GEMM (emulator/fp8_gemm.py) at a Mixtral / Llama expert's
shape, 4096 x 14336, against the exact bf16 GEMM kernel on the same shape, with a bit-for-bit check.

The weight is e4m3 in the [N, K] layout read through a transposed view (as layer programs hold it),
with 128 x 128 block scales; the activations bf16 or e4m3 with 1 x 128 scales (DeepSeek-V3's layout).
GFLOP/s count 2 M N K. Bit-exactness: the rows [0, 4) of the result against numerics_fp8.gemm_fp8
(rows are independent, so a row subset checks the schedule; the full definition would take minutes).

    python benchmarks/fp8_gemm.py [--m 16 512] [--k 4096] [--n 14336] [--reps 3]
"""

from __future__ import annotations

import argparse
import os

import numpy as np

from opbsim.emulator.bench import best_time
from opbsim.emulator.fp8_gemm import gemm_fp8
from opbsim.emulator.kernels import gemm_bf16, thread_count
from opbsim.isa import numerics as N
from opbsim.isa.floatbits import bf16_bits
from opbsim.isa.types import DType


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--m", type=int, nargs="+", default=[16, 512])
    p.add_argument("--k", type=int, default=4096)
    p.add_argument("--n", type=int, default=14336)
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    k, n = args.k, args.n
    rng = np.random.default_rng(0)
    w = N.quant(rng.standard_normal((n, k)).astype(np.float32), np.full((n, -(-k // 128)), 0.005, np.float32), 128)
    sb = rng.uniform(1e-3, 1e-2, (-(-k // 128), -(-n // 128))).astype(np.float32)
    w16 = bf16_bits(rng.standard_normal((n, k)).astype(np.float32))
    load = os.getloadavg()[0]
    print(f"# load average (1 min) before: {load:.2f}; numba threads {thread_count()}; K={k} N={n}; "
          f"best of {args.reps}")
    print("| M | a | fp8 GEMM s | fp8 GFLOP/s | bf16 exact GEMM s | bf16 GFLOP/s | fp8 / bf16 time "
          "| bit-exact (rows 0-3) |")
    print("|---|---|---|---|---|---|---|---|")
    for m in args.m:
        x = rng.standard_normal((m, k)).astype(np.float32)
        sa = (np.abs(x.reshape(m, -1, 128)).max(axis=-1) / np.float32(448)).astype(np.float32)
        for a_kind, a in (("fp8", N.quant(x, sa, 128)), ("bf16", bf16_bits(x))):
            s_a = sa if a_kind == "fp8" else np.ones_like(sa)
            out: dict[str, np.ndarray] = {}

            def run_fp8(a=a, s_a=s_a, out=out):
                out["y"] = gemm_fp8(a, w.T, s_a, sb, 128, 128)

            acc = np.zeros((m, n), np.float32)
            a16 = a if a_kind == "bf16" else bf16_bits(x)

            def run_bf16(a16=a16, acc=acc):
                acc.fill(0.0)
                gemm_bf16(a16, w16.T, acc)

            t8, t16 = best_time(run_fp8, args.reps), best_time(run_bf16, args.reps)
            want = N.gemm_fp8(N.widen(a[:4], DType.BF16 if a_kind == "bf16" else DType.FP8_E4M3),
                              N.widen(w.T, DType.FP8_E4M3), s_a[:4], sb, 128, 128)
            exact = bool(np.array_equal(out["y"][:4].view(np.uint32), want.view(np.uint32)))
            flops = 2 * m * n * k
            print(f"| {m} | {a_kind} | {t8:.3f} | {flops / t8 / 1e9:.1f} | {t16:.3f} | {flops / t16 / 1e9:.1f} | "
                  f"{t8 / t16:.2f} | {str(exact).lower()} |", flush=True)
    print(f"# load average (1 min) after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
