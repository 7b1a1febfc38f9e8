"""Op constructors: each builds one ``Op`` from its tensors and derives its ``Estimates``.

FLOP conventions (per element unless stated): a multiply-add is 2; every vector and fused op counts
what the instruction that runs it issues per element (``OpSpec.ops_per_element`` of isa/spec.py, the
table the timing model reads): RMSNorm 4, LayerNorm 7 (6 without a bias), a fused residual add 1, RoPE
3, softmax 5; FFN activation per intermediate element ``ACT_FLOPS`` (silu 3, gelu 6, relu 1, and a
gating multiply 1 for the gated forms; gpt-oss's clamped SwiGLU adds the alpha scale 1, three clamps
3 and the up + 1 add 1 to silu and the multiply); a sigmoid 3 (exp, add, divide).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opbsim.isa.spec import TABLE, Opcode
from opbsim.isa.types import DType
from opbsim.workloads.estimates import Estimates
from opbsim.workloads.models import FFNAct, Norm
from opbsim.workloads.ops import Op, OpClass, OpKind, Role, TensorSpec

__all__ = ["ACT_FLOPS", "SIGMOID_FLOPS", "SOFTMAX_FLOPS", "ROPE_FLOPS", "RMSNORM_FLOPS", "COMBINE_FLOPS_PER_ROW",
           "weight", "act", "gemm", "norm", "elementwise", "ffn", "attention", "batched_gemm", "collective"]

_OPS = {s.opcode: s.ops_per_element for s in TABLE}
ACT_FLOPS = {FFNAct.SWIGLU: _OPS[Opcode.SILU] + _OPS[Opcode.MUL], FFNAct.GEGLU: _OPS[Opcode.GELU] + _OPS[Opcode.MUL],
             FFNAct.RELU: _OPS[Opcode.RELU], FFNAct.GELU: _OPS[Opcode.GELU],
             FFNAct.SWIGLU_OAI: _OPS[Opcode.SILU] + _OPS[Opcode.MUL] + _OPS[Opcode.SCALE] + 3 * _OPS[Opcode.MAX]
             + _OPS[Opcode.ADD]}
SIGMOID_FLOPS = _OPS[Opcode.EXP] + _OPS[Opcode.ADD] + _OPS[Opcode.DIV]
SOFTMAX_FLOPS = _OPS[Opcode.SOFTMAX]
ROPE_FLOPS = _OPS[Opcode.ROPE]
COMBINE_FLOPS_PER_ROW = _OPS[Opcode.SCATTER_ADD]  # per element of a routed row: weight and add
RMSNORM_FLOPS = _OPS[Opcode.RMSNORM]
_NORM_FLOPS = {Norm.RMS: RMSNORM_FLOPS, Norm.LAYER_NO_BIAS: _OPS[Opcode.LAYERNORM] - 1,
               Norm.LAYER: _OPS[Opcode.LAYERNORM]}


def weight(name: str, shape: tuple[int, ...], dtype: DType) -> TensorSpec:
    return TensorSpec(name, shape, dtype, Role.WEIGHT)


def block_scales(w: TensorSpec, block: tuple[int, int]) -> TensorSpec:
    """``<w>.scale``: the fp32 scales of fp8 weight ``w`` [..., K, N], one per ``block`` of its last
    two axes ([..., ceil(K / bk), ceil(N / bn)]; weight_format.py)."""
    *lead, k, n = w.shape
    return TensorSpec(f"{w.name}.scale", (*lead, -(-k // block[0]), -(-n // block[1])), DType.FP32, Role.WEIGHT)


def projection(name: str, shape: tuple[int, ...], dtype: DType, fp8_block: tuple[int, int] | None
               ) -> tuple[TensorSpec, TensorSpec | None]:
    """A projection's weight and, where ``fp8_block`` is given, its e4m3 storage and block scales."""
    if fp8_block is None:
        return weight(name, shape, dtype), None
    w = weight(name, shape, DType.FP8_E4M3)
    return w, block_scales(w, fp8_block)


def _fp8_flops(rows: int, n: int, scale: TensorSpec | None) -> int:
    """gemm_fp8's promotion: one fp32 multiply and add per output per k block (numerics.md "FP8")."""
    return 0 if scale is None else 2 * rows * n * scale.shape[-2]


def act(name: str, shape: tuple[int, ...], dtype: DType) -> TensorSpec:
    return TensorSpec(name, shape, dtype, Role.ACTIVATION)


def _rows(t: TensorSpec) -> int:
    return t.numel // t.shape[-1]


def gemm(name: str, x: TensorSpec, w: TensorSpec, out: str, *, op_class: OpClass, bias: TensorSpec | None = None,
         out_dtype: DType | None = None, params: Mapping[str, object] | None = None,
         scale: TensorSpec | None = None) -> Op:
    """``out = x W (+ bias)`` with ``x`` of shape (..., k) and ``W`` of shape (k, n); with ``scale``
    (an fp8 ``W``'s block scales, the last input) the block-scaled fp8 GEMM."""
    m, (k, n) = _rows(x), w.shape
    if x.shape[-1] != k:
        raise ValueError(f"{name}: x has {x.shape[-1]} columns, W has {k} rows")
    y = act(out, (m, n), out_dtype or x.dtype)
    inputs = ((x, w) if bias is None else (x, w, bias)) + (() if scale is None else (scale,))
    flops = 2 * m * k * n + (m * n if bias is not None else 0) + _fp8_flops(m, n, scale)
    return Op(name, OpKind.GEMM, op_class, x.dtype, inputs, (y,),
              Estimates(flops, sum(t.nbytes for t in inputs), y.nbytes), params or {})


def norm(name: str, x: TensorSpec, w: Sequence[TensorSpec], out: str, *, kind: Norm,
         residual: TensorSpec | None = None, sum_out: str | None = None, op_class: OpClass = OpClass.OTHER,
         params: Mapping[str, object] | None = None) -> Op:
    """Row-wise normalisation of ``x``; with ``residual`` it first forms ``x + residual``, written as
    ``sum_out`` when given (the residual stream the next sublayer adds to)."""
    elems = x.numel
    inputs = (x, *(() if residual is None else (residual,)), *w)
    outputs = (act(out, x.shape, x.dtype),)
    if sum_out is not None:
        outputs += (act(sum_out, x.shape, x.dtype),)
    flops = (_NORM_FLOPS[kind] + (residual is not None)) * elems
    return Op(name, OpKind.NORM, op_class, x.dtype, inputs, outputs,
              Estimates(flops, sum(t.nbytes for t in inputs), sum(t.nbytes for t in outputs)),
              {"norm": kind.value, "residual": residual is not None, **(params or {})})


def elementwise(name: str, kind: OpKind, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *,
                flops: int, op_class: OpClass = OpClass.OTHER, params: Mapping[str, object] | None = None) -> Op:
    """An op whose traffic is exactly its operands (RoPE, KV store, dispatch, combine, top-k, ...)."""
    return Op(name, kind, op_class, inputs[0].dtype, tuple(inputs), tuple(outputs),
              Estimates(flops, sum(t.nbytes for t in inputs), sum(t.nbytes for t in outputs)), params or {})


def ffn(name: str, x: TensorSpec, width: int, out: str, *, act_kind: FFNAct, prefix: str, op_class: OpClass,
        output_gate: bool = False, bias: bool = False, params: Mapping[str, object] | None = None,
        fp8_block: tuple[int, int] | None = None) -> Op:
    """A fused FFN over the rows of ``x`` with intermediate ``width`` (this device's shard): the
    intermediate activation stays on chip, so traffic is x, the weights and the output.
    ``output_gate`` scales each row's output by sigmoid(x w_gate) (Qwen's shared expert); ``bias``
    adds a bias after the up (and gate) and the down projection (gpt-oss's experts). With
    ``fp8_block`` both projections are fp8 with block scales (the last inputs, up's then down's)."""
    rows, h, dtype = _rows(x), x.shape[-1], x.dtype
    up, up_scale = projection(f"{prefix}.w_gate_up" if act_kind.gated else f"{prefix}.w_up",
                              (h, width * (2 if act_kind.gated else 1)), dtype, fp8_block)
    down, down_scale = projection(f"{prefix}.w_down", (width, h), dtype, fp8_block)
    inputs = (x, up, down)
    y = act(out, (rows, h), dtype)
    flops = 2 * rows * h * width * act_kind.num_matrices + ACT_FLOPS[act_kind] * rows * width
    if output_gate:
        inputs += (weight(f"{prefix}.w_output_gate", (h, 1), dtype),)
        flops += 2 * rows * h + 4 * rows + rows * h  # x w_gate, sigmoid, scale
    if bias:
        inputs += (weight(f"{prefix}.b_gate_up" if act_kind.gated else f"{prefix}.b_up", (up.shape[1],), dtype),
                   weight(f"{prefix}.b_down", (h,), dtype))
        flops += rows * (up.shape[1] + h)
    if up_scale is not None and down_scale is not None:
        inputs += (up_scale, down_scale)
        flops += _fp8_flops(rows, up.shape[1], up_scale) + _fp8_flops(rows, h, down_scale)
    return Op(name, OpKind.FFN, op_class, dtype, inputs, (y,),
              Estimates(flops, sum(t.nbytes for t in inputs), y.nbytes),
              {"tokens": rows, "ffn": width, "act": act_kind.value, "output_gate": output_gate,
               **({"bias": True} if bias else {}), **(params or {})})


def attention(name: str, q: Sequence[TensorSpec], kv: Sequence[TensorSpec], out: str, *, pairs: int, qk_dim: int,
              v_dim: int, heads: int, params: Mapping[str, object], sinks: TensorSpec | None = None) -> Op:
    """Scaled-dot-product attention over ``pairs`` (query, key) pairs per head: scores over
    ``qk_dim``, values over ``v_dim``. ``kv`` holds the keys and values the op reads. ``sinks`` (one
    learned logit per head, gpt-oss) joins each query row's softmax as one more logit without a value."""
    rows, dtype = q[0].shape[0], q[0].dtype
    y = act(out, (rows, heads, v_dim), dtype)
    inputs = (*q, *kv, *(() if sinks is None else (sinks,)))
    flops = pairs * heads * (2 * qk_dim + 2 * v_dim + SOFTMAX_FLOPS)
    if sinks is not None:
        flops += rows * heads * SOFTMAX_FLOPS
    return Op(name, OpKind.ATTENTION, OpClass.ATTENTION, dtype, inputs, (y,),
              Estimates(flops, sum(t.nbytes for t in inputs), y.nbytes), params)


def batched_gemm(name: str, x: TensorSpec, w: TensorSpec, out: str, *, op_class: OpClass,
                 params: Mapping[str, object] | None = None, scale: TensorSpec | None = None) -> Op:
    """One GEMM per batch index b: ``x`` (m, b, k) and ``w`` (b, k, n) give (m, b, n); ``scale``:
    an fp8 ``w``'s block scales."""
    m, b, k = x.shape
    n = w.shape[2]
    if w.shape[:2] != (b, k):
        raise ValueError(f"{name}: x {x.shape} does not match W {w.shape}")
    y = act(out, (m, b, n), x.dtype)
    inputs = (x, w) + (() if scale is None else (scale,))
    return Op(name, OpKind.BATCHED_GEMM, op_class, x.dtype, inputs, (y,),
              Estimates(2 * m * b * k * n + b * _fp8_flops(m, n, scale), sum(t.nbytes for t in inputs), y.nbytes),
              params or {})


def collective(name: str, kind: OpKind, x: TensorSpec, out: str, *, tp: int, out_shape: tuple[int, ...]) -> Op:
    """Ring all-reduce (each device sends 2 (tp-1)/tp of the tensor, adds (tp-1)/tp of it) or ring
    all-gather (each device sends its shard to tp-1 peers)."""
    y = act(out, out_shape, x.dtype)
    if kind is OpKind.ALL_REDUCE:
        link, flops = 2 * (tp - 1) * x.nbytes // tp, (tp - 1) * x.numel // tp
    else:
        link, flops = (tp - 1) * x.nbytes, 0
    return Op(name, kind, OpClass.COMM, x.dtype, (x,), (y,), Estimates(flops, x.nbytes, y.nbytes, link),
              {"devices": tp})
