"""What a GPU's kernels reach of its peaks, from published kernel-level benchmarks.

A unit with a ``KernelEfficiency`` (ComputeSpec.efficiency) runs each instruction no faster than
its achievable time (emulator/work.py ``achievable_s``): the matrix work with the GEMM's rows
padded up to the tensor-core tile (``tile_rows``: a decode GEMM of 8 rows occupies a 64-row tile,
so small-M and grouped MoE GEMMs reach a fraction of peak), at ``gemm_peak_fraction`` of the matrix
peak (``grouped_gemm_peak_fraction`` for the expert GEMMs of a fused-MoE kernel), and its HBM
bytes at ``hbm_fraction`` of the HBM bandwidth. The roofline bound
(work.roofline_bound_s) stays at the peaks; these fractions only slow kernels down.
``opbsim calibrate --gpu`` measures the same quantities on a real GPU to refresh them.

Sources: [DG] deepseek-ai/DeepGEMM README: FP8 GEMMs "up to 1550 TFLOPS" on H800 SXM5 (peak 1979
dense FP8): 0.78. [FA2] Dao, "FlashAttention-2", arXiv 2307.08691, sec. 1: optimised GEMMs reach
"up to 80-90% of the theoretical maximum device throughput" on A100. [FM] deepseek-ai/FlashMLA
README: decode attention "up to 3000 GB/s in memory-bound configuration" on H800 SXM5 (HBM3
3.35 TB/s): 0.90. [PTX] PTX ISA, wgmma.mma_async: the Hopper warpgroup MMA has M = 64 rows.

Fused MoE (grouped GEMM): vLLM's Triton ``fused_moe`` kernel runs every expert's GEMM in one launch
over tokens sorted by expert, each expert's rows padded to BLOCK_SIZE_M. Its kernel times from
``benchmarks/kernels/benchmark_moe.py`` (both GEMMs of one MoE layer, BF16, random routing, tuned
configs): [V24700] vLLM PR #24700 (2025-09-11), H100, Mixtral-8x7B tp 2 (E=8, N=7168, K=4096,
top-2): "Batch size: 1536, Kernel time: 1122.93 us": 1536 x 2 pairs x 2 x 3 x 4096 x 7168 flops =
541.2 GFLOP in 1.123 ms = 482 TFLOPS, 0.49 of 989.4; at 8-128 tokens (all 8 experts touched,
1.41 GB of weights) 435-494 us, 2.85-3.24 TB/s, 0.85-0.97 of 3.35 TB/s: the streaming fraction of
decode, as ``hbm_fraction`` has it. [V40542] vLLM PR #40542 (2026-04-21), A100-SXM4-80GB, E=64,
N=1408, hidden 2048, top-6, bf16, tuned: M = 4096 in 2636.6 us: 4096 x 6 x 2 x 3 x 2048 x 1408 =
425.3 GFLOP, 161 TFLOPS, 0.52 of 312.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opbsim.errors import InputError

__all__ = ["KernelEfficiency", "HOPPER", "AMPERE"]


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelEfficiency:
    """``gemm_peak_fraction``: a large GEMM's share of the matrix peak; ``tile_rows``: the rows of
    the smallest tensor-core tile a GEMM is padded to; ``hbm_fraction``: a streaming kernel's share
    of the HBM bandwidth; ``grouped_gemm_peak_fraction``: the share of the matrix peak the expert
    GEMMs of a fused-MoE (grouped GEMM) kernel reach at many rows per expert. Fractions lie in (0, 1]."""

    gemm_peak_fraction: float
    tile_rows: int
    hbm_fraction: float
    grouped_gemm_peak_fraction: float

    def __post_init__(self) -> None:
        for name in ("gemm_peak_fraction", "hbm_fraction", "grouped_gemm_peak_fraction"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and 0 < v <= 1):
                raise InputError(f"kernel efficiency: {name} must be in (0, 1], got {v!r}")
        if isinstance(self.tile_rows, bool) or not isinstance(self.tile_rows, int) or self.tile_rows < 1:
            raise InputError(f"kernel efficiency: tile_rows must be a positive integer, got {self.tile_rows!r}")

    def gemm_fraction(self, rows: int, *, grouped: bool = False) -> float:
        """The share of the matrix peak a GEMM of ``rows`` output rows reaches: the peak fraction
        (``grouped``: an expert GEMM of a fused-MoE kernel, the grouped fraction) times the rows'
        share of their padded tiles (monotone non-decreasing over whole tiles, <= 1)."""
        peak = self.grouped_gemm_peak_fraction if grouped else self.gemm_peak_fraction
        if rows < 1:
            return peak
        padded = -(-rows // self.tile_rows) * self.tile_rows
        return peak * (rows / padded)


HOPPER = KernelEfficiency(
    gemm_peak_fraction=0.78,  # [DG] 1550 / 1979
    tile_rows=64,  # [PTX] wgmma M = 64
    hbm_fraction=0.90,  # [FM] 3000 / 3352 GB/s
    grouped_gemm_peak_fraction=0.49,  # [V24700] 482 / 989.4 TFLOPS, Triton fused_moe, Mixtral tp 2, 1536 tokens
)

AMPERE = KernelEfficiency(
    gemm_peak_fraction=0.80,  # [FA2] GEMMs reach 80-90% of peak on A100 (the lower end)
    tile_rows=64,  # assumed: cuBLAS/CUTLASS tiles of at least 64 rows (the Hopper figure)
    hbm_fraction=0.90,  # assumed: the [FM] H800 figure (no A100 kernel-level figure found)
    grouped_gemm_peak_fraction=0.52,  # [V40542] 161 / 312 TFLOPS, Triton fused_moe, E=64 N=1408, 4096 tokens
)
