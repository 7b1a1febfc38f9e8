"""Throughput of the exact GEMM kernel (opbsim/emulator/kernels.py) against numpy's sgemm and the
vectorised numpy definition (numerics.gemm), with a bit-for-bit check, on the shapes of the
executor's hot instructions.

    python benchmarks/exact_gemm.py [--reps 3] [--definition]

Every shape runs the exact GEMM (numba's threads, NUMBA_NUM_THREADS) and numpy's sgemm (the BLAS
library's threads) in this one process, best of ``--reps`` each. GFLOP/s count 2*M*N*K; ratio is
exact / sgemm. The weight operand is bf16 in the Hugging Face layout [N, K], read through a
transposed view (as the layer programs do); sgemm gets contiguous float32 copies.
"""

from __future__ import annotations

import argparse
import os

from opbsim.emulator.bench import bench_exact

SHAPES = (  # (M, K, N, what)
    (512, 1024, 1024, "the reference shape of earlier measurements"),
    (512, 4096, 4096, "a 512-token projection, d_model 4096"),
    (16, 4096, 14336, "Mixtral expert w1/w3, 16 routed tokens"),
    (16, 14336, 4096, "Mixtral expert w2, 16 routed tokens"),
    (64, 4096, 4096, "a 64-token projection"),
    (1, 4096, 14336, "a GEMV (one token)"),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--definition", action="store_true", help="also time numerics.gemm (slow at large K)")
    args = ap.parse_args()
    print(f"load average (1 min) at start: {os.getloadavg()[0]:.2f}", flush=True)
    print(f"{'M':>4} {'K':>6} {'N':>6}  {'exact':>8} {'sgemm':>8} {'ratio':>6} {'definition':>10}  bit-exact  shape")
    for m, k, n, what in SHAPES:
        r = bench_exact(m, k, n, reps=args.reps, definition=args.definition)
        defn = f"{r.numpy_definition_gflops:.1f}" if r.numpy_definition_gflops is not None else "-"
        row = (f"{m:4d} {k:6d} {n:6d}  {r.exact_gflops:8.1f} {r.sgemm_gflops:8.1f} {r.ratio_vs_sgemm:6.2f} "
               f"{defn:>10}  {str(r.bit_exact):9s}")
        print(f"{row}  {what} ({r.threads} threads, load {r.load_1min:.2f})", flush=True)


if __name__ == "__main__":
    main()
