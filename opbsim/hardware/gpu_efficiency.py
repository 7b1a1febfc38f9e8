"""What a GPU's kernels reach of its peaks, from published kernel-level benchmarks.

A unit with a ``KernelEfficiency`` (ComputeSpec.efficiency) runs each instruction no faster than
its achievable time (emulator/work.py ``achievable_s``), by kernel class:

- GEMM: the matrix work with the GEMM's rows padded up to the tensor-core tile (``tile_rows``: a
  decode GEMM of 8 rows occupies a 64-row tile, so small-M and grouped MoE GEMMs reach a fraction of
  peak), at ``gemm_peak_fraction`` of the matrix peak (``grouped_gemm_peak_fraction`` for the expert
  GEMMs of a fused-MoE kernel); its HBM bytes at ``hbm_fraction`` of the HBM bandwidth.
- Elementwise and normalisation kernels (no matrix work): their HBM bytes at
  ``elementwise_hbm_fraction``.
- Decode attention: the whole kernel's HBM bytes (every request's KV cache) at the bandwidth share
  ``decode_attention`` gives for that many bytes (a measured curve: small kernels are latency-bound).
- Prefill attention (causal): only the unmasked half of the score and value products is computed
  (FlashAttention skips the tiles above the diagonal), at ``prefill_attention`` of the matrix peak
  for the chunk's context length.

The roofline bound (work.roofline_bound_s) stays at the peaks; these fractions only slow kernels
down. ``opbsim calibrate --gpu`` measures the GEMM and streaming quantities on a real GPU.

Sources: [DG] deepseek-ai/DeepGEMM README: FP8 GEMMs "up to 1550 TFLOPS" on H800 SXM5 (peak 1979
dense FP8): 0.78. [FA2] Dao, "FlashAttention-2", arXiv 2307.08691: optimised GEMMs reach "up to
80-90% of the theoretical maximum device throughput" on A100 (sec. 1); its attention forward pass
reaches "50-73% of the theoretical maximum FLOPs/s on A100" (abstract). [FM] deepseek-ai/FlashMLA
README: decode attention "up to 3000 GB/s in memory-bound configuration" on H800 SXM5 (HBM3 3.35
TB/s): 0.90. [PTX] PTX ISA, wgmma.mma_async: the Hopper warpgroup MMA has M = 64 rows. [QX] Guo,
Zadouri, Dao, "Getting Memory-bound Kernels to Speed-of-Light" (Dao-AILab/quack,
media/2025-07-10-membound-sol.md): RMSNorm, softmax and cross-entropy kernels on an H100 SXM "about
3 TB/s (~90% peak) for a reduction dimension larger than 4k" (torch.compile's about 2 TB/s). [FI]
FlashInfer blog "Accelerating Self-Attentions for LLM Serving with FlashInfer" (2024-02-02,
flashinfer-ai.github.io, _posts/2024-01-03-introduce-flashinfer.md), Figure 6: batch decode
bandwidth utilisation, FlashInfer 0.0.1, llama-7b setting (32 heads of 128, fp16: 16 KiB of KV per
token and layer), batch 1, 16 and 64, cold L2, on an H100 SXM 80GB (3352 GB/s) and an A100 PCIe
80GB (1935 GB/s); read off the figure (assets/imgs/batch-decode-benchmark.png), ``_FI_H100`` and
``_FI_A100`` below. Its Figure 9 (GQA, llama-70b tp 2: 4 KV heads, 32 query heads, batch 64, tensor
cores) reaches 60% / 73% / 88% at 1k / 2k / 8k tokens per request on the H100, the Figure 6 curve's
share at the same bytes (62% / 75% / 88%): the share follows the bytes, not the head layout. [FA3]
Shah et al., "FlashAttention-3", arXiv 2407.08608, Figure 5, forward, causal, head dim 128, BF16,
H100 SXM5 (batch x length = 16k tokens): 292 / 423 / 521 / 579 / 602 / 616 TFLOPS at 512 / 1k / 2k /
4k / 8k / 16k (its flops count the unmasked half).

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

__all__ = ["StreamCurve", "KernelEfficiency", "HOPPER", "AMPERE", "decode_curve"]


def _fraction(where: str, v: object) -> None:
    if isinstance(v, bool) or not isinstance(v, int | float) or not (math.isfinite(v) and 0 < v <= 1):
        raise InputError(f"{where} must be in (0, 1], got {v!r}")


def _interp_log(x: float, points: tuple[tuple[float, float], ...]) -> float:
    """The second coordinate at ``x``, linear in log(x) between points, held past either end."""
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * math.log(x / x0) / math.log(x1 / x0)
    return points[-1][1]


@dataclass(frozen=True, slots=True)
class StreamCurve:
    """A memory-bound kernel's share of the HBM bandwidth by the time its bytes would take at the
    full bandwidth (``points``: (that time in s, share), times increasing, shares in (0, 1]). Keyed
    by time, not bytes, so that a GPU of more bandwidth reaches the curve's share at the same
    streaming time: the kernel's fixed latencies do not shrink with the bandwidth. Below the first
    point the kernel takes the first point's time (its floor); past the last it keeps the last share."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if not self.points:
            raise InputError("stream curve: needs at least one point")
        for t, share in self.points:
            _fraction(f"stream curve: the share at {t!r} s", share)
            if isinstance(t, bool) or not isinstance(t, int | float) or not (math.isfinite(t) and t > 0):
                raise InputError(f"stream curve: times must be positive, got {t!r}")
        if any(b[0] <= a[0] for a, b in zip(self.points, self.points[1:])):
            raise InputError("stream curve: times must increase")

    def time_s(self, nbytes: float, bw_Bps: float) -> float:
        """Seconds the kernel takes for ``nbytes`` over a memory of ``bw_Bps`` (0 for no bytes):
        between points, the time is interpolated linearly in log-log (non-decreasing when the
        points' times are)."""
        if nbytes <= 0:
            return 0.0
        ideal = nbytes / bw_Bps
        times = tuple((x, x / share) for x, share in self.points)
        if ideal <= times[0][0]:
            return times[0][1]
        if ideal >= times[-1][0]:
            return ideal / self.points[-1][1]
        return math.exp(_interp_log(ideal, tuple((x, math.log(t)) for x, t in times)))


def decode_curve(bw_GBps: float, series: tuple[tuple[int, tuple[tuple[int, float], ...]], ...],
                 token_B: int) -> StreamCurve:
    """The curve of a decode-attention benchmark: ``series`` of (batch, ((tokens per request,
    bandwidth share), ...)) on a GPU of ``bw_GBps``, ``token_B`` KV bytes per token. Shares measured
    at equal bytes are averaged; a size is never slower than a larger measured one (the time is made
    non-decreasing in bytes, from the largest size down)."""
    by_bytes: dict[int, list[float]] = {}
    for batch, points in series:
        for tokens, share in points:
            by_bytes.setdefault(batch * tokens * token_B, []).append(share)
    sizes = sorted(by_bytes)
    times = [b / (bw_GBps * 1e9 * (sum(by_bytes[b]) / len(by_bytes[b]))) for b in sizes]
    for i in range(len(times) - 2, -1, -1):
        times[i] = min(times[i], times[i + 1])
    return StreamCurve(tuple((b / (bw_GBps * 1e9), b / (bw_GBps * 1e9) / t) for b, t in zip(sizes, times)))


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelEfficiency:
    """``gemm_peak_fraction``: a large GEMM's share of the matrix peak; ``tile_rows``: the rows of
    the smallest tensor-core tile a GEMM is padded to; ``hbm_fraction``: a streaming GEMM's share
    of the HBM bandwidth; ``grouped_gemm_peak_fraction``: the share of the matrix peak the expert
    GEMMs of a fused-MoE (grouped GEMM) kernel reach at many rows per expert;
    ``elementwise_hbm_fraction``: an elementwise or normalisation kernel's share of the HBM bandwidth
    (None: ``hbm_fraction``); ``decode_attention``: a decode-attention kernel's bandwidth share by its
    bytes (None: ``hbm_fraction``); ``prefill_attention``: (context tokens, share of the matrix peak
    over the unmasked work) of a causal attention kernel, interpolated in log(context) and held past
    either end (None: its GEMMs time as any GEMM). Fractions lie in (0, 1]."""

    gemm_peak_fraction: float
    tile_rows: int
    hbm_fraction: float
    grouped_gemm_peak_fraction: float
    elementwise_hbm_fraction: float | None = None
    decode_attention: StreamCurve | None = None
    prefill_attention: tuple[tuple[int, float], ...] | None = None

    def __post_init__(self) -> None:
        for name in ("gemm_peak_fraction", "hbm_fraction", "grouped_gemm_peak_fraction", "elementwise_hbm_fraction"):
            v = getattr(self, name)
            if v is not None:
                _fraction(f"kernel efficiency: {name}", v)
        if isinstance(self.tile_rows, bool) or not isinstance(self.tile_rows, int) or self.tile_rows < 1:
            raise InputError(f"kernel efficiency: tile_rows must be a positive integer, got {self.tile_rows!r}")
        if self.decode_attention is not None and not isinstance(self.decode_attention, StreamCurve):
            raise InputError(f"kernel efficiency: decode_attention must be a StreamCurve, "
                             f"got {self.decode_attention!r}")
        if self.prefill_attention is not None:
            pts = self.prefill_attention
            if not pts or any(not isinstance(n, int) or isinstance(n, bool) or n < 1 for n, _ in pts) \
                    or any(b[0] <= a[0] for a, b in zip(pts, pts[1:])):
                raise InputError("kernel efficiency: prefill_attention needs (context tokens, fraction) points "
                                 "with increasing positive contexts")
            for n, f in pts:
                _fraction(f"kernel efficiency: prefill_attention at {n} tokens", f)

    def gemm_fraction(self, rows: int, *, grouped: bool = False) -> float:
        """The share of the matrix peak a GEMM of ``rows`` output rows reaches: the peak fraction
        (``grouped``: an expert GEMM of a fused-MoE kernel, the grouped fraction) times the rows'
        share of their padded tiles (monotone non-decreasing over whole tiles, <= 1)."""
        peak = self.grouped_gemm_peak_fraction if grouped else self.gemm_peak_fraction
        if rows < 1:
            return peak
        padded = -(-rows // self.tile_rows) * self.tile_rows
        return peak * (rows / padded)

    @property
    def elementwise_fraction(self) -> float:
        return self.hbm_fraction if self.elementwise_hbm_fraction is None else self.elementwise_hbm_fraction

    def prefill_attention_fraction(self, context_tokens: int) -> float | None:
        """The causal attention kernel's share of the matrix peak at ``context_tokens`` keys
        (None: no attention model)."""
        if self.prefill_attention is None:
            return None
        return _interp_log(max(context_tokens, 1), tuple((float(n), f) for n, f in self.prefill_attention))


_KV_TOKEN_B = 32 * 128 * 2 * 2  # [FI] llama-7b setting: 32 heads x 128 x (K, V) x fp16 per token and layer

_FI_H100 = (  # [FI] Fig. 6, H100 SXM 80GB, FlashInfer (solid lines): (batch, ((tokens per request, share), ...))
    (1, ((32, .024), (64, .030), (128, .055), (256, .070), (512, .152), (1024, .217), (2048, .350), (4096, .450),
         (8192, .593), (16384, .725), (32768, .827), (65536, .875))),
    (16, ((32, .185), (64, .278), (128, .390), (256, .505), (512, .635), (1024, .766), (2048, .847), (4096, .890))),
    (64, ((32, .411), (64, .510), (128, .641), (256, .759), (512, .831), (1024, .883))),
)
_FI_A100 = (  # [FI] Fig. 6, A100 PCIe 80GB, FlashInfer (solid lines)
    (1, ((32, .031), (64, .046), (128, .081), (256, .162), (512, .244), (1024, .323), (2048, .417), (4096, .525),
         (8192, .672), (16384, .775), (32768, .834), (65536, .870))),
    (16, ((32, .237), (64, .310), (128, .423), (256, .525), (512, .671), (1024, .757), (2048, .810), (4096, .840))),
    (64, ((32, .409), (64, .519), (128, .656), (256, .767), (512, .837), (1024, .872))),
)
_FA3_CAUSAL_TFLOPS = ((512, 292), (1024, 423), (2048, 521), (4096, 579), (8192, 602), (16384, 616))  # [FA3]

HOPPER = KernelEfficiency(
    gemm_peak_fraction=0.78,  # [DG] 1550 / 1979
    tile_rows=64,  # [PTX] wgmma M = 64
    hbm_fraction=0.90,  # [FM] 3000 / 3352 GB/s
    grouped_gemm_peak_fraction=0.49,  # [V24700] 482 / 989.4 TFLOPS, Triton fused_moe, Mixtral tp 2, 1536 tokens
    elementwise_hbm_fraction=0.90,  # [QX] about 3.0 of 3.35 TB/s, RMSNorm / softmax, H100 SXM
    decode_attention=decode_curve(3352.0, _FI_H100, _KV_TOKEN_B),  # [FI] Fig. 6, H100 SXM
    prefill_attention=tuple((n, tf / 989.4) for n, tf in _FA3_CAUSAL_TFLOPS),  # [FA3] of the 989.4 BF16 peak
)

AMPERE = KernelEfficiency(
    gemm_peak_fraction=0.80,  # [FA2] GEMMs reach 80-90% of peak on A100 (the lower end)
    tile_rows=64,  # assumed: cuBLAS/CUTLASS tiles of at least 64 rows (the Hopper figure)
    hbm_fraction=0.90,  # assumed: the [FM] H800 figure (no A100 kernel-level figure found)
    grouped_gemm_peak_fraction=0.52,  # [V40542] 161 / 312 TFLOPS, Triton fused_moe, E=64 N=1408, 4096 tokens
    elementwise_hbm_fraction=0.90,  # assumed: the [QX] H100 figure (no A100 figure found)
    decode_attention=decode_curve(1935.0, _FI_A100, _KV_TOKEN_B),  # [FI] Fig. 6, A100 PCIe
    prefill_attention=((1, 0.50),),  # [FA2] the lower end of its 50-73% forward range, at every length
)
