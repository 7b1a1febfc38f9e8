"""GPU timing with CUDA events: the exact GEMM / GEMV across Op/B, decode attention across group
sizes, and (where PyTorch is installed) the vendor bf16 tensor-core GEMM on the same shapes.

Every measurement repeats: a write over a buffer larger than L2 (cold cache, as a layer's
weights would be), a spin kernel that keeps the GPU busy while the host enqueues the measured
launches (so no host launch latency is measured), an event, the launches, an event. A
``Timing`` keeps the median and the minimum over the repeats, with the operation's FLOPs and
the bytes it must move (each operand and result once), so Op/B = flops / bytes_moved.

Shapes follow the programs: GEMM reads an HF-layout weight [F, H] through its transposed view
and writes fp32 (the expert projections of emulator/validation/moe.py); attention is, per
sequence, gemm -> causal softmax -> gemm batched over [KV heads, group] with the keys shared by
a group (stride 0), as layers/attention.py defines it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opbsim.isa.floatbits import bf16_bits
from opbsim.reference.interface import BF16, FP32
from opbsim.reference.pycuda_runner import GpuOps

__all__ = ["Timing", "Bench", "time_gemm", "time_vendor_gemm", "time_attention", "gemm_sweep", "attention_sweep",
           "TOKENS", "GROUPS"]

TOKENS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
"""Tokens per expert: the Op/B of an expert GEMM is about this number (bf16 weights dominate)."""
GROUPS = (1, 2, 4, 8, 16)
"""Query heads per KV head: the Op/B of decode attention is about this number."""


@dataclass(frozen=True)
class Timing:
    """One measured operation: ``op`` (gemm, gemm-vendor, attention), its shape parameters,
    FLOPs, bytes it must move, and the median and minimum seconds over ``repeats``."""

    op: str
    params: tuple[tuple[str, int], ...]
    flops: int
    bytes_moved: int
    seconds: float
    seconds_min: float
    repeats: int

    def param(self, name: str) -> int:
        return dict(self.params)[name]

    @property
    def op_per_byte(self) -> float:
        return self.flops / self.bytes_moved

    @property
    def tflops(self) -> float:
        return self.flops / self.seconds / 1e12

    @property
    def gbps(self) -> float:
        return self.bytes_moved / self.seconds / 1e9


class Bench:
    """Cold-cache, launch-latency-free event timing on one GPU (see the module docstring)."""

    def __init__(self, ops: GpuOps, flush_MiB: int = 256, spin_us: float = 3000.0):
        self.ops = ops
        b = ops.backend
        self._flush_n = flush_MiB * 2**20 // 4
        self._flush = b.alloc(4 * self._flush_n)
        clock_MHz = float(b.info().get("sm_clock_max_MHz") or 2000.0)
        self._spin_cycles = np.int64(spin_us * clock_MHz)

    def measure(self, launch: Callable[[], None], repeats: int, warmup: int = 2) -> tuple[float, float]:
        """(median, min) seconds of ``launch()`` over ``repeats`` cold-cache runs."""
        b = self.ops.backend
        for _ in range(warmup):
            launch()
        b.synchronize()
        times = []
        for r in range(repeats):
            b.launch("opb_flush", (1024, 1, 1), (256, 1, 1),
                     (np.uint64(b.ptr(self._flush)), np.int64(self._flush_n), np.uint32(r)))
            b.launch("opb_spin", (1, 1, 1), (1, 1, 1), (self._spin_cycles,))
            start, end = b.event_pair()
            b.record(start)
            launch()
            b.record(end)
            times.append(b.elapsed_ms(start, end) * 1e-3)
        return statistics.median(times), min(times)


def _bf16(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return bf16_bits(rng.standard_normal(shape, dtype=np.float32) * np.float32(scale))


def _gemm_work(tokens: int, hidden: int, ffn: int, out_bytes: int) -> tuple[int, int]:
    return 2 * tokens * hidden * ffn, 2 * tokens * hidden + 2 * hidden * ffn + out_bytes * tokens * ffn


def time_gemm(ops: GpuOps, tokens: int, hidden: int, ffn: int, repeats: int = 20, bench: Bench | None = None,
              weight=None) -> Timing:
    """The exact kernel: x [T, H] bf16 times the transposed view of w [F, H] bf16 -> fp32 [T, F]."""
    bench = bench or Bench(ops)
    rng = np.random.default_rng(0)
    w = weight if weight is not None else ops.upload(_bf16(rng, (ffn, hidden), hidden ** -0.5))
    x, out = ops.upload(_bf16(rng, (tokens, hidden))), ops.empty((tokens, ffn), FP32)
    wt = ops.transpose(w)
    med, low = bench.measure(lambda: ops.gemm_into(x, wt, out), repeats)
    flops, nbytes = _gemm_work(tokens, hidden, ffn, 4)
    return Timing("gemm", (("tokens", tokens), ("hidden", hidden), ("ffn", ffn)), flops, nbytes, med, low, repeats)


def time_vendor_gemm(bench: Bench, tokens: int, hidden: int, ffn: int, repeats: int = 20) -> Timing | None:
    """PyTorch's bf16 GEMM (cuBLAS, tensor cores, its own summation order: not exact) on the
    same shape, bf16 out; None without PyTorch or its CUDA. Same stream, same events."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    x = torch.randn(tokens, hidden, dtype=torch.bfloat16, device="cuda")
    w = torch.randn(ffn, hidden, dtype=torch.bfloat16, device="cuda")
    out = torch.empty(tokens, ffn, dtype=torch.bfloat16, device="cuda")
    med, low = bench.measure(lambda: torch.mm(x, w.t(), out=out), repeats)
    flops, nbytes = _gemm_work(tokens, hidden, ffn, 2)
    return Timing("gemm-vendor", (("tokens", tokens), ("hidden", hidden), ("ffn", ffn)), flops, nbytes, med, low,
                  repeats)


def attention_work(batch: int, kv_heads: int, group: int, ctx: int, head_dim: int) -> tuple[int, int]:
    """FLOPs (two GEMMs, 5 per softmax element) and bytes (q, K, V, fp32 scores written and
    read, bf16 probabilities written and read, the output) of ``batch`` decode steps."""
    heads = kv_heads * group
    flops = batch * (4 * heads * ctx * head_dim + 5 * heads * ctx)
    nbytes = batch * (2 * heads * head_dim * 2 + 2 * 2 * ctx * kv_heads * head_dim + 2 * 4 * heads * ctx
                      + 2 * 2 * heads * ctx)
    return flops, nbytes


def time_attention(ops: GpuOps, batch: int, kv_heads: int, group: int, ctx: int, head_dim: int, repeats: int = 20,
                   bench: Bench | None = None) -> Timing:
    """``batch`` decode sequences, each one new token against ``ctx`` cached keys and values."""
    bench = bench or Bench(ops)
    rng = np.random.default_rng(1)
    kd, heads = kv_heads * head_dim, kv_heads * group
    scale = float(np.float32(head_dim ** -0.5))
    steps = []
    for _ in range(batch):
        q = ops.upload(_bf16(rng, (kv_heads, group, 1, head_dim)))
        kc, vc = ops.upload(_bf16(rng, (ctx, kd))), ops.upload(_bf16(rng, (ctx, kd)))
        kt4 = ops.view(kc, (kv_heads, group, head_dim, ctx), (head_dim, 0, 1, kd))
        v4 = ops.view(vc, (kv_heads, group, ctx, head_dim), (head_dim, 0, kd, 1))
        s = ops.empty((kv_heads, group, 1, ctx), FP32)
        p = ops.empty((kv_heads, group, 1, ctx), BF16)
        o = ops.empty((kv_heads, group, 1, head_dim), BF16)
        steps.append((q, kt4, v4, s, p, o))

    def launch() -> None:
        for q, kt4, v4, s, p, o in steps:
            ops.gemm_into(q, kt4, s)
            ops.softmax_into(s, p, scale, True, ctx - 1)
            ops.gemm_into(p, v4, o)

    med, low = bench.measure(launch, repeats)
    flops, nbytes = attention_work(batch, kv_heads, group, ctx, head_dim)
    params = (("batch", batch), ("kv_heads", kv_heads), ("group", group), ("heads", heads), ("ctx", ctx),
              ("head_dim", head_dim))
    return Timing("attention", params, flops, nbytes, med, low, repeats)


def gemm_sweep(ops: GpuOps, tokens=TOKENS, hidden: int = 4096, ffn: int = 14336, repeats: int = 20,
               vendor: bool = True) -> list[Timing]:
    """The exact GEMM (and the vendor GEMM when available) for each tokens-per-expert count."""
    bench = Bench(ops)
    w = ops.upload(_bf16(np.random.default_rng(0), (ffn, hidden), hidden ** -0.5))
    out = [time_gemm(ops, t, hidden, ffn, repeats, bench, w) for t in tokens]
    if vendor:
        out += [v for v in (time_vendor_gemm(bench, t, hidden, ffn, repeats) for t in tokens) if v is not None]
    return out


def attention_sweep(ops: GpuOps, groups=GROUPS, kv_heads: int = 8, ctx: int = 4096, head_dim: int = 128,
                    batch: int = 8, repeats: int = 20) -> list[Timing]:
    bench = Bench(ops)
    return [time_attention(ops, batch, kv_heads, g, ctx, head_dim, repeats, bench) for g in groups]
