"""Projections through fp8 weights: the block-scaled GEMM as fp8 serving runs it.

An fp8 weight W [K, N] (e4m3 codes) has fp32 scales ``<W>.scale`` [ceil(K / bk), ceil(N / bn)], one
per (bk, bn) block (weight_format.py; DeepSeek-V3's 128 x 128). ``project`` computes out = x W as
DeepSeek-V3's inference code and DeepGEMM do (W8A8, DeepSeek-V3 Technical Report section 3.3):
- the activations quantized in 1 x bk tiles, per row: ``act_quant(x)`` -> (xq e4m3, xs fp32);
- ``gemm_fp8(xq, W, xs, W.scale, bk, bn)``: per k block the fp32 partial sum, scaled by xs * ws and
  added in block order (numerics_fp8.gemm_fp8), rounded once to ``out``'s dtype.
On Logic-PIM the rows go in the tiles ``Builder.row_tile`` gives, each quantized on its own (the
values are the same: a row's scales depend on that row only).

``weight_only`` products (MLA's absorbed w_kv_b, whose activations are per-head slices of the query
or the attention output) keep x in bf16: the GEMM multiplies bf16 by e4m3 with unit activation
scales, the weight block scales as above.

An fp8 KV cache holds e4m3 codes with one fp32 scale per cache tensor and layer (``<cache>.scale``,
vLLM's ``k_scale`` / ``v_scale``): ``kv_rows`` quantizes the rows stored (``quant`` by that scale),
``cache_product`` reads the cache through gemm_fp8 with bf16 queries or probabilities (unit
activation scales) and the cache's scale: one block as deep as k (up to ``MAX_BLOCK``), so a score or
an output is its whole k-ordered fp32 sum times the scale, the scale applied once after the dot
product as fp8-KV decode kernels do (FlashInfer folds k_scale into the scores).
"""

from __future__ import annotations

import numpy as np

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.layers.builder import Builder
from opbsim.layers.view import View, broadcast, rows
from opbsim.workloads.ops import Op, TensorSpec
from opbsim.workloads.weight_format import fp8_block

__all__ = ["scale_of", "block_of", "product", "project", "weight_only", "unit_scales", "kv_scale", "kv_rows",
           "cache_product", "dequantized", "MAX_BLOCK"]

MAX_BLOCK = 2**16 - 1
"""The largest block extent gemm_fp8's 16-bit block fields hold."""


def scale_of(op: Op, weight: TensorSpec) -> TensorSpec | None:
    """The block scales among ``op``'s inputs of its fp8 ``weight`` (None for a bf16 weight)."""
    if weight.dtype is not DType.FP8_E4M3:
        return None
    name = f"{weight.name}.scale"
    found = next((t for t in op.inputs if t.name == name), None)
    if found is None:
        raise InputError(f"{op.name}: fp8 weight {weight.name} has no block scales ({name})")
    return found


def block_of(b: Builder, *, routed: bool) -> tuple[int, int]:
    """(bk, bn): the weight block of the model's fp8 projections (a routed expert's with ``routed``)."""
    block = fp8_block(b.model, routed=routed)
    if block is None:
        raise InputError(f"{b.model.name}: an fp8 weight without a block size (weight_quant)")
    return block


def project(b: Builder, out: View, x: View, w: View, scale: View, *, routed: bool = False,
            grouped: bool = False, x_scale: View | None = None) -> None:
    """out [M, N] = x [M, K] w [K, N] for an fp8 ``w`` (``scale`` its block scales): the activations
    quantized per row and the block-scaled GEMM, in row tiles. x already e4m3 (rows of an fp8 KV
    cache) is multiplied as it is, ``x_scale`` [1] its per-tensor scale."""
    bk, bn = block_of(b, routed=routed)
    m, k = x.shape
    kb = -(-k // bk)
    step = b.row_tile(k, w.shape[-1], partial_B=8) or m
    if x.dtype is DType.FP8_E4M3:
        for r in range(0, m, step):
            n = min(step, m - r)
            b.emit("gemm_fp8", rows(out, r, n), rows(x, r, n), w, broadcast(x_scale, (n, kb)), scale, bk, bn,
                   grouped=grouped)
        return
    xq = b.scratch("x_fp8", DType.FP8_E4M3, (min(step, m), k))
    xs = b.scratch("x_scales", DType.FP32, (min(step, m), kb))
    for r in range(0, m, step):
        n = min(step, m - r)
        b.emit("act_quant", rows(xq, 0, n), rows(xs, 0, n), rows(x, r, n), bk)
        b.emit("gemm_fp8", rows(out, r, n), rows(xq, 0, n), w, rows(xs, 0, n), scale, bk, bn, grouped=grouped)


def product(b: Builder, out: View, x: View, w: View, scale: View | None, *, x_scale: View | None = None) -> None:
    """out = x w in the unit's row tiles, whatever the operands are stored as: ``b.gemm`` for bf16 x
    and w; ``project`` for an fp8 w (``scale`` its block scales); an e4m3 x (rows of an fp8 KV cache,
    ``x_scale`` its scale) is multiplied as it is by an fp8 w, and dequantized first for a bf16 w."""
    if scale is not None:
        project(b, out, x, w, scale, x_scale=x_scale)
        return
    if x.dtype is DType.FP8_E4M3:
        x = dequantized(b, x, x_scale, "x_values")
    b.gemm(out, x, w)


def unit_scales(b: Builder, shape: tuple[int, ...]) -> View:
    """fp32 1.0 broadcast to ``shape``: the activation scales of a weight-only product."""
    return broadcast(b.const("one", np.ones(1, dtype=np.float32), DType.FP32), shape)


def weight_only(b: Builder, out: View, x: View, w: View, sb: View, bk: int, bn: int, **kwargs) -> None:
    """out = x w for bf16 x [..., M, K] and fp8 w [..., K, N] with block scales ``sb``
    [..., ceil(K / bk), ceil(N / bn)]: gemm_fp8 with unit activation scales."""
    sa = unit_scales(b, (*x.shape[:-1], -(-x.shape[-1] // bk)))
    b.emit("gemm_fp8", out, x, w, sa, sb, bk, bn, **kwargs)


def kv_scale(b: Builder, cache: str) -> View | None:
    """The scale of KV-cache buffer ``cache`` [1] fp32 where the cache is fp8, else None."""
    return b.buf(f"{cache}.scale", DType.FP32, (1,)) if b.model.kv_dtype is DType.FP8_E4M3 else None


def kv_rows(b: Builder, rows_view: View, scale: View | None, name: str) -> View:
    """The rows [T, W] to store in a KV cache: themselves for a bf16 cache, else their e4m3 codes by
    the cache's scale (a scratch ``name``)."""
    if scale is None:
        return rows_view
    codes = b.scratch(name, DType.FP8_E4M3, rows_view.shape)
    t, w = rows_view.shape
    b.emit("quant", codes, rows_view, broadcast(scale, (t, 1)), w)
    return codes


def cache_product(b: Builder, out: View, x: View, cache: View, scale: View | None, **kwargs) -> None:
    """out = x cache for bf16 x [..., M, K] and a view of a KV cache [..., K, N]: a bf16 gemm, or
    for an fp8 cache the weight-only gemm_fp8 with the cache's scale in every block."""
    if scale is None:
        b.emit("gemm", out, x, cache, **kwargs)
        return
    k, n = cache.shape[-2:]
    bk, bn = min(k, MAX_BLOCK), min(n, MAX_BLOCK)
    sb = broadcast(scale, (*cache.shape[:-2], -(-k // bk), -(-n // bn)))
    weight_only(b, out, x, cache, sb, bk, bn, **kwargs)


def dequantized(b: Builder, codes: View, scale: View, name: str) -> View:
    """A scratch ``name`` of bf16(code * scale) for the rows of an fp8 cache (convert, exact, then scale)."""
    values = b.scratch(name, DType.BF16, codes.shape)
    b.emit("cvt", values, codes)
    b.emit("mul", values, values, broadcast(scale, codes.shape))
    return values
