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
"""

from __future__ import annotations

import numpy as np

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.layers.builder import Builder
from opbsim.layers.view import View, broadcast, rows
from opbsim.workloads.ops import Op, TensorSpec
from opbsim.workloads.weight_format import fp8_block

__all__ = ["scale_of", "block_of", "project", "weight_only", "unit_scales"]


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
            grouped: bool = False) -> None:
    """out [M, N] = x [M, K] w [K, N] for an fp8 ``w`` (``scale`` its block scales): the activations
    quantized per row and the block-scaled GEMM, in row tiles."""
    bk, bn = block_of(b, routed=routed)
    m, k = x.shape
    kb = -(-k // bk)
    step = b.row_tile(k, w.shape[-1]) or m
    xq = b.scratch("x_fp8", DType.FP8_E4M3, (min(step, m), k))
    xs = b.scratch("x_scales", DType.FP32, (min(step, m), kb))
    for r in range(0, m, step):
        n = min(step, m - r)
        b.emit("act_quant", rows(xq, 0, n), rows(xs, 0, n), rows(x, r, n), bk)
        b.emit("gemm_fp8", rows(out, r, n), rows(xq, 0, n), w, rows(xs, 0, n), scale, bk, bn, grouped=grouped)


def unit_scales(b: Builder, shape: tuple[int, ...]) -> View:
    """fp32 1.0 broadcast to ``shape``: the activation scales of a weight-only product."""
    return broadcast(b.const("one", np.ones(1, dtype=np.float32), DType.FP32), shape)


def weight_only(b: Builder, out: View, x: View, w: View, sb: View, bk: int, bn: int, **kwargs) -> None:
    """out = x w for bf16 x [..., M, K] and fp8 w [..., K, N] with block scales ``sb``
    [..., ceil(K / bk), ceil(N / bn)]: gemm_fp8 with unit activation scales."""
    sa = unit_scales(b, (*x.shape[:-1], -(-x.shape[-1] // bk)))
    b.emit("gemm_fp8", out, x, w, sa, sb, bk, bn, **kwargs)
