"""Speed of the exact GEMM: the numba kernel against numpy's sgemm (another summation order) and
the vectorised numpy definition (numerics.gemm), with a bit-for-bit check, on one shape.

GFLOP/s count 2 M N K. The weight operand is bf16 in the [N, K] layout read through a transposed
view (as layer programs do); sgemm gets contiguous float32 copies. Both run in this process with
their own thread pools (numba's and the BLAS library's), one after the other.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from opbsim.emulator.kernels import gemm_bf16, thread_count
from opbsim.errors import InputError
from opbsim.isa import numerics
from opbsim.isa.floatbits import bf16_bits, bf16_widen

__all__ = ["ExactBench", "bench_exact", "best_time"]


@dataclass(frozen=True, slots=True)
class ExactBench:
    m: int
    k: int
    n: int
    exact_gflops: float
    sgemm_gflops: float
    numpy_definition_gflops: float | None  # None when not measured
    bit_exact: bool
    threads: int  # numba threads of the exact GEMM
    load_1min: float | None  # the machine's 1-minute load average before timing (None: not known)

    @property
    def ratio_vs_sgemm(self) -> float:
        return self.exact_gflops / self.sgemm_gflops


def best_time(fn, reps: int) -> float:
    """The fastest of ``reps`` calls of ``fn``, in seconds, after one warm-up call."""
    fn()  # warm-up (numba compiles on first use)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench_exact(m: int, k: int, n: int, *, reps: int = 3, definition: bool = True, seed: int = 0) -> ExactBench:
    """Best-of-``reps`` throughput of each; the definition runs once (it is the slow reference)."""
    for name, v in (("m", m), ("k", k), ("n", n), ("reps", reps)):
        if not isinstance(v, int) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")
    rng = np.random.default_rng(seed)
    a = bf16_bits(rng.standard_normal((m, k), dtype=np.float32))
    b = bf16_bits(rng.standard_normal((n, k), dtype=np.float32)).T
    acc = np.zeros((m, n), np.float32)

    def exact() -> None:
        acc[...] = 0
        gemm_bf16(a, b, acc)

    af, bf = bf16_widen(a), np.ascontiguousarray(bf16_widen(b))
    flops = 2 * m * n * k
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    t_exact = best_time(exact, reps)
    t_sgemm = best_time(lambda: af @ bf, reps)
    t0 = time.perf_counter()
    want = numerics.gemm(af, bf)
    t_def = time.perf_counter() - t0
    same = bool(np.array_equal(acc.view(np.uint32), want.view(np.uint32)))
    return ExactBench(m, k, n, flops / t_exact / 1e9, flops / t_sgemm / 1e9,
                      flops / t_def / 1e9 if definition else None, same, thread_count(), load)
