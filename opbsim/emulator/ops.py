"""Per-device value semantics of each instruction: operand checks, then numerics.py or a kernel.

``HANDLERS`` maps an opcode to ``handler(ctx) -> flops``. The flop count is a measure of work
for throughput figures, not a count of fp32 steps: 2*M*N*K for a GEMM, 2 per element for
scatter_add, 1 per element for elementwise ops and reductions, and the per-element numbers in
``work.VECTOR_OPS_PER_ELEMENT`` (the table the timing model uses) for the elementary and fused ops.
Every handler reads its inputs
completely before it writes, so a destination may overlap a source.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from opbsim.emulator import fp8_gemm, kernels
from opbsim.emulator.context import FLOATS, OpContext, shape_text
from opbsim.emulator.datamem import row_descriptor
from opbsim.emulator.faults import OperandError
from opbsim.emulator.gemm_backend import pim_gemm_backend
from opbsim.emulator.work import VECTOR_OPS_PER_ELEMENT
from opbsim.isa import numerics
from opbsim.isa.numerics_fp8 import blocks
from opbsim.isa.spec import Opcode
from opbsim.isa.types import DType, Unit

__all__ = ["HANDLERS", "Handler"]

Handler = Callable[[OpContext], int]
HANDLERS: dict[Opcode, Handler] = {}

def _handles(*opcodes: Opcode):
    def register(fn: Handler) -> Handler:
        for op in opcodes:
            HANDLERS[op] = fn
        return fn
    return register


@_handles(Opcode.COPY)
def _copy(ctx: OpContext) -> int:
    src = ctx.desc("src")
    ctx.need_shape("dst", src.shape)
    ctx.need_same_dtype("dst", "src")
    ctx.write_raw("dst", numerics.copy(ctx.raw("src")))
    return 0


@_handles(Opcode.CVT)
def _cvt(ctx: OpContext) -> int:
    src, dst = ctx.desc("src"), ctx.desc("dst")
    ctx.need_shape("dst", src.shape)
    ctx.write_raw("dst", numerics.cvt(ctx.raw("src"), src.dtype, dst.dtype))
    return src.numel


@_handles(Opcode.ADD, Opcode.SUB, Opcode.MUL, Opcode.DIV)
def _binary(ctx: OpContext) -> int:
    a = ctx.need_dtype("a", *FLOATS)
    ctx.need_dtype("b", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("b", a.shape)
    ctx.need_shape("dst", a.shape)
    fn = numerics.SEMANTICS[ctx.inst.opcode]
    ctx.write("dst", fn(ctx.values("a"), ctx.values("b")))
    return a.numel


@_handles(Opcode.EXP, Opcode.RSQRT, Opcode.SILU, Opcode.SIGMOID, Opcode.RELU, Opcode.GELU)
def _unary(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("dst", src.shape)
    fn = numerics.SEMANTICS[ctx.inst.opcode]
    ctx.write("dst", fn(ctx.values("src")))
    return src.numel * VECTOR_OPS_PER_ELEMENT[ctx.inst.opcode]


@_handles(Opcode.SCALE)
def _scale(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("dst", src.shape)
    ctx.write("dst", numerics.scale(ctx.values("src"), float(ctx.imm("factor"))))
    return src.numel


@_handles(Opcode.CLAMP)
def _clamp(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("dst", src.shape)
    lo, hi, lower = float(ctx.imm("lo")), float(ctx.imm("hi")), bool(ctx.imm("lower"))
    if lower and not lo <= hi:
        raise OperandError(f"lo={lo} is above hi={hi}")
    ctx.write("dst", numerics.clamp(ctx.values("src"), lo, hi, lower))
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.CLAMP]


@_handles(Opcode.MAX, Opcode.SUM)
def _reduce(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("dst", src.shape[:-1] + (1,))
    fn = numerics.SEMANTICS[ctx.inst.opcode]
    ctx.write("dst", fn(ctx.values("src")))
    return src.numel


def _product_shape(ctx: OpContext, a, b) -> tuple[tuple[int, ...], int, int, int]:
    """(batch, M, K, N) of a product of a [..., M, K] and b [..., K, N], its dst checked to be [..., M, N]."""
    batch, (m, k) = a.shape[:-2], a.shape[-2:]
    if b.shape[:-2] != batch or b.shape[-2] != k:
        raise OperandError(
            f"operand b ({b.name}) has shape {shape_text(b.shape)}, expected {shape_text(batch + (k,))} "
            f"and N columns (a is {shape_text(a.shape)})"
        )
    n = b.shape[-1]
    ctx.need_shape("dst", batch + (m, n))
    return batch, m, k, n


@_handles(Opcode.GEMM, Opcode.GEMM_ACC)
def _gemm(ctx: OpContext) -> int:
    a = ctx.need_rank("a", 2, 3, 4)
    b = ctx.need_rank("b", len(a.shape))
    ctx.need_dtype("a", DType.BF16)
    ctx.need_dtype("b", DType.BF16)
    batch, m, k, n = _product_shape(ctx, a, b)
    if ctx.inst.opcode is Opcode.GEMM_ACC:
        ctx.need_dtype("dst", DType.FP32)
        acc = np.array(ctx.values("dst"), dtype=np.float32, order="C", copy=True)
    else:
        ctx.need_dtype("dst", *FLOATS)
        acc = np.zeros(batch + (m, n), dtype=np.float32)
    ra, rb = ctx.raw("a"), ctx.raw("b")
    rtl = pim_gemm_backend() if ctx.inst.unit is Unit.PIM else None
    with np.errstate(all="ignore"):
        for i in np.ndindex(*batch):
            if rtl is None:
                kernels.gemm_bf16(ra[i], rb[i], acc[i])
            else:
                acc[i] = rtl(ra[i], rb[i], acc[i] if ctx.inst.opcode is Opcode.GEMM_ACC else None)
    ctx.write("dst", acc)
    return 2 * m * n * k * math.prod(batch)


def _block_size(ctx: OpContext, field: str) -> int:
    size = int(ctx.imm(field))
    if size < 1:
        raise OperandError(f"{field}={size} must be >= 1")
    return size


@_handles(Opcode.GEMM_FP8)
def _gemm_fp8(ctx: OpContext) -> int:
    a = ctx.need_rank("a", 2, 3, 4)
    b = ctx.need_rank("b", len(a.shape))
    ctx.need_dtype("a", DType.BF16, DType.FP8_E4M3)
    ctx.need_dtype("b", DType.FP8_E4M3)
    ctx.need_dtype("sa", DType.FP32)
    ctx.need_dtype("sb", DType.FP32)
    ctx.need_dtype("dst", *FLOATS)
    bk, bn = _block_size(ctx, "block_k"), _block_size(ctx, "block_n")
    batch, m, k, n = _product_shape(ctx, a, b)
    ctx.need_shape("sa", batch + (m, blocks(k, bk)))
    ctx.need_shape("sb", batch + (blocks(k, bk), blocks(n, bn)))
    ra, rb, sa, sb = ctx.raw("a"), ctx.raw("b"), ctx.values("sa"), ctx.values("sb")
    acc = np.zeros(batch + (m, n), dtype=np.float32)
    for i in np.ndindex(*batch):
        acc[i] = fp8_gemm.gemm_fp8(ra[i], rb[i], sa[i], sb[i], bk, bn)
    ctx.write("dst", acc)
    return 2 * m * n * k * math.prod(batch)


def _quant_operands(ctx: OpContext):
    """The checks quant and act_quant share: src bf16 / fp32 [..., H], dst e4m3 of its shape, scale fp32
    [..., ceil(H / group)]; returns (src, group)."""
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", DType.FP8_E4M3)
    ctx.need_dtype("scale", DType.FP32)
    ctx.need_shape("dst", src.shape)
    group = _block_size(ctx, "group")
    ctx.need_shape("scale", src.shape[:-1] + (blocks(src.shape[-1], group),))
    return src, group


@_handles(Opcode.QUANT)
def _quant(ctx: OpContext) -> int:
    src, group = _quant_operands(ctx)
    ctx.write_raw("dst", numerics.quant(ctx.values("src"), ctx.values("scale"), group))
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.QUANT]


@_handles(Opcode.ACT_QUANT)
def _act_quant(ctx: OpContext) -> int:
    src, group = _quant_operands(ctx)
    codes, scale = numerics.act_quant(ctx.values("src"), group)
    ctx.write_raw("dst", codes)
    ctx.write("scale", scale)
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.ACT_QUANT]


@_handles(Opcode.ROPE)
def _rope(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_rank("src", 2, 3, 4)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("dst", src.shape)
    ctx.need_dtype("pos", DType.I32)
    ctx.need_shape("pos", (src.shape[-2],))
    d = src.shape[-1]
    if d % 2:
        raise OperandError(f"operand src ({src.name}) has an odd last axis ({d}); rope rotates halves")
    ctx.need_dtype("freq", DType.FP32)
    ctx.need_shape("freq", (d // 2,))
    ctx.write("dst", numerics.rope(ctx.values("src"), ctx.values("pos"), ctx.values("freq"), float(ctx.imm("mscale"))))
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.ROPE]


@_handles(Opcode.SOFTMAX)
def _softmax(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("dst", src.shape)
    y = numerics.softmax(ctx.values("src"), float(ctx.imm("scale")), bool(ctx.imm("causal")), int(ctx.imm("qpos")))
    ctx.write("dst", y)
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.SOFTMAX]


@_handles(Opcode.SOFTMAX_MASKED)
def _softmax_masked(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_shape("dst", src.shape)
    sink = bool(ctx.imm("sink"))
    if src.shape[-1] < 1 + sink:
        raise OperandError(f"operand src ({src.name}) has {src.shape[-1]} columns; a softmax with a sink needs "
                           "a score column besides it")
    y = numerics.softmax(ctx.values("src"), float(ctx.imm("scale")), True, int(ctx.imm("qpos")),
                         int(ctx.imm("span")), bool(ctx.imm("chunked")), sink)
    ctx.write("dst", y)
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.SOFTMAX_MASKED]


@_handles(Opcode.RMSNORM)
def _rmsnorm(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    ctx.need_dtype("weight", *FLOATS)
    ctx.need_shape("dst", src.shape)
    ctx.need_shape("weight", src.shape[-1:])
    ctx.write("dst", numerics.rmsnorm(ctx.values("src"), ctx.values("weight"), float(ctx.imm("eps"))))
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.RMSNORM]


@_handles(Opcode.LAYERNORM)
def _layernorm(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("dst", *FLOATS)
    for name in ("weight", "bias"):
        ctx.need_dtype(name, *FLOATS)
        ctx.need_shape(name, src.shape[-1:])
    ctx.need_shape("dst", src.shape)
    ctx.write("dst", numerics.layernorm(ctx.values("src"), ctx.values("weight"), ctx.values("bias"),
                                        float(ctx.imm("eps"))))
    return src.numel * VECTOR_OPS_PER_ELEMENT[Opcode.LAYERNORM]


@_handles(Opcode.TOPK)
def _topk(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("vals", *FLOATS)
    ctx.need_dtype("idx", DType.I32)
    k, e = int(ctx.imm("k")), src.shape[-1]
    if not 1 <= k <= e:
        raise OperandError(f"k={k} is outside 1..{e} (the last axis of src ({src.name}))")
    out_shape = src.shape[:-1] + (k,)
    ctx.need_shape("vals", out_shape)
    ctx.need_shape("idx", out_shape)
    vals, idx = numerics.topk(ctx.values("src"), k)
    ctx.write("vals", vals)
    ctx.write("idx", idx)
    return src.numel


@_handles(Opcode.TOPK_GROUPED)
def _topk_grouped(ctx: OpContext) -> int:
    src = ctx.need_dtype("src", DType.FP32)
    ctx.need_rank("src", 2)
    ctx.need_dtype("bias", DType.FP32)
    ctx.need_dtype("vals", *FLOATS)
    ctx.need_dtype("idx", DType.I32)
    e = src.shape[-1]
    ctx.need_shape("bias", (e,))
    k, groups, keep = (int(ctx.imm(f)) for f in ("k", "groups", "keep"))
    if not 1 <= groups <= e or e % groups:
        raise OperandError(f"groups={groups} does not divide the {e} entries of src ({src.name})")
    if not 1 <= keep <= groups:
        raise OperandError(f"keep={keep} is outside 1..{groups} (groups)")
    if not 1 <= k <= keep * (e // groups):
        raise OperandError(f"k={k} is outside 1..{keep * (e // groups)} (the entries of the kept groups)")
    out_shape = src.shape[:-1] + (k,)
    ctx.need_shape("vals", out_shape)
    ctx.need_shape("idx", out_shape)
    vals, idx = numerics.topk_grouped(ctx.values("src"), ctx.values("bias"), k, groups, keep)
    ctx.write("vals", vals)
    ctx.write("idx", idx)
    return 2 * src.numel


@_handles(Opcode.GATHER)
def _gather(ctx: OpContext) -> int:
    src = ctx.need_rank("src", 2)
    ctx.need_rank("dst", 2)
    ctx.need_rank("idx", 1)
    t = ctx.desc("idx").shape[0]
    ctx.need_shape("dst", (t, src.shape[1]))
    ctx.need_same_dtype("dst", "src")
    idx = ctx.indices("idx", src.shape[0])
    out = np.empty((t, src.shape[1]), dtype=numerics.STORAGE[src.dtype])
    kernels.gather_rows(ctx.raw("src"), idx, out)
    ctx.write_raw("dst", out)
    return 0


def _rows_checked(ctx: OpContext, dst_rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The scatter operands' common checks: src [T, width], idx [T] in 0..dst_rows-1.

    Returns (rows, idx): the distinct destination rows in increasing order, and idx.
    """
    src = ctx.need_rank("src", 2)
    ctx.need_rank("idx", 1)
    ctx.need_shape("idx", src.shape[:1])
    if src.shape[1] != width:
        raise OperandError(
            f"operand src ({src.name}) has {src.shape[1]} columns, expected {width} (the columns of dst)"
        )
    idx = ctx.indices("idx", dst_rows)
    return np.unique(idx), idx


@_handles(Opcode.SCATTER)
def _scatter(ctx: OpContext) -> int:
    dst = ctx.need_rank("dst", 2)
    ctx.need_same_dtype("dst", "src")
    _, idx = _rows_checked(ctx, dst.shape[0], dst.shape[1])
    rows, last = numerics.scatter_last(idx)
    src = ctx.raw("src")[last].copy()
    for r, values in zip(rows, src):
        ctx.memory.write_raw(row_descriptor(dst, int(r)), values)
    return 0


@_handles(Opcode.SCATTER_ADD)
def _scatter_add(ctx: OpContext) -> int:
    """Reads and writes only the rows of dst that idx names (the others need not be written)."""
    dst = ctx.need_rank("dst", 2)
    ctx.need_dtype("dst", DType.FP32)
    src = ctx.need_dtype("src", *FLOATS)
    ctx.need_dtype("w", *FLOATS)
    rows, idx = _rows_checked(ctx, dst.shape[0], dst.shape[1])
    ctx.need_shape("w", src.shape[:1])
    row_descs = [row_descriptor(dst, int(r)) for r in rows]
    acc = np.stack([ctx.memory.load(d) for d in row_descs]) if len(rows) else np.zeros((0, dst.shape[1]), np.float32)
    src_v = np.ascontiguousarray(ctx.values("src"), dtype=np.float32)
    w = np.ascontiguousarray(ctx.values("w"), dtype=np.float32)
    with np.errstate(all="ignore"):
        kernels.scatter_add_rows(acc, src_v, np.searchsorted(rows, idx), w)
    for d, values in zip(row_descs, acc):
        ctx.memory.write_raw(d, numerics.store(values, DType.FP32))
    return 2 * src.numel
