"""Throughput of the exact GEMM kernel (opbsim/emulator/kernels.py) against numpy's sgemm and the
vectorised numpy definition (numerics.gemm), with a bit-for-bit check, on the shapes of the
executor's hot instructions.

    python benchmarks/exact_gemm.py [--reps 3]

GFLOP/s count 2*M*N*K; ratio is exact / sgemm. The weight operand is bf16 in the Hugging Face layout [N, K], read
through a transposed view (as the layer programs do); sgemm gets contiguous float32 copies.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from opbsim.emulator.kernels import gemm_bf16
from opbsim.isa import numerics
from opbsim.isa.floatbits import bf16_bits, bf16_widen

SHAPES = (  # (M, K, N, what)
    (512, 1024, 1024, "the TOOLCHAIN.md reference shape"),
    (16, 4096, 14336, "Mixtral expert w1/w3, 16 routed tokens"),
    (16, 14336, 4096, "Mixtral expert w2, 16 routed tokens"),
    (64, 4096, 4096, "a 64-token projection"),
    (1, 4096, 14336, "a GEMV (one token)"),
)


def _best(fn, reps: int) -> float:
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def _row(rng, m: int, k: int, n: int, reps: int, definition: bool) -> tuple[float, float, str, bool]:
    a = bf16_bits(rng.standard_normal((m, k), dtype=np.float32))
    b = bf16_bits(rng.standard_normal((n, k), dtype=np.float32)).T
    acc = np.zeros((m, n), np.float32)

    def exact():
        acc[...] = 0
        gemm_bf16(a, b, acc)

    af, bf = bf16_widen(a), np.ascontiguousarray(bf16_widen(b))
    flops = 2 * m * n * k
    t_exact = _best(exact, reps)
    t_sgemm = _best(lambda: af @ bf, reps)
    same = bool(np.array_equal(acc.view(np.uint32), numerics.gemm(af, bf).view(np.uint32)))
    defn = f"{flops / _best(lambda: numerics.gemm(af, bf), 1) / 1e9:.1f}" if definition else "-"
    return flops / t_exact / 1e9, flops / t_sgemm / 1e9, defn, same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--definition", action="store_true", help="also time numerics.gemm (slow at large K)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'M':>4} {'K':>6} {'N':>6}  {'exact':>8} {'sgemm':>8} {'ratio':>6} {'definition':>10}  bit-exact  shape")
    for m, k, n, what in SHAPES:
        exact, sgemm, defn, same = _row(rng, m, k, n, args.reps, args.definition)
        row = f"{m:4d} {k:6d} {n:6d}  {exact:8.1f} {sgemm:8.1f} {exact / sgemm:6.2f} {defn:>10}  {str(same):9s}"
        print(f"{row}  {what}", flush=True)


if __name__ == "__main__":
    main()
