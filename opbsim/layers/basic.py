"""The embedding, norms, linear layers and the collectives of tensor parallelism."""

from __future__ import annotations

import numpy as np

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.layers import fp8
from opbsim.layers.builder import Builder
from opbsim.layers.stage_rows import logit_rows, positions
from opbsim.layers.view import View, broadcast
from opbsim.workloads.models import Norm
from opbsim.workloads.ops import Op, Role

__all__ = ["embed", "norm", "linear", "all_reduce", "all_gather"]


def embed(b: Builder, op: Op) -> None:
    """x0 = embed_tokens[token_ids] (+ embed_positions[position] with learned positions, one bf16 add)."""
    m = b.model
    T, h = b.stage.tokens, m.hidden_size
    table = b.buf("embed_tokens", m.dtype, (m.vocab_size, h))
    x0 = b.buf("x0", m.dtype, (T, h))
    if not m.learned_positions:
        b.emit("gather", x0, table, b.buf("token_ids", DType.I32, (T,)))
        return
    pos = positions(b.stage)
    if pos.max(initial=0) >= m.learned_positions:
        raise InputError(f"{op.name}: position {int(pos.max())} is past the {m.learned_positions} learned positions")
    tokens = b.scratch("token_rows", m.dtype, (T, h))
    rows = b.scratch("position_rows", m.dtype, (T, h))
    b.emit("gather", tokens, table, b.buf("token_ids", DType.I32, (T,)))
    b.emit("gather", rows, b.buf("embed_positions", m.dtype, (m.learned_positions, h)), b.const("positions", pos))
    b.emit("add", x0, tokens, rows)


def norm(b: Builder, op: Op) -> None:
    m = b.model
    x_spec, out_spec = op.inputs[0], op.outputs[0]
    rows, h = x_spec.shape
    T = b.stage.tokens
    x = b.buf(x_spec.name, m.dtype, (T, h))
    residual = b.buf(op.inputs[1].name, m.dtype, (T, h)) if op.params["residual"] else None
    weights = [b.buf(t.name, m.dtype, (h,)) for t in op.inputs if t.role is Role.WEIGHT]
    if rows != T:  # the final norm sees only the rows that sample a token
        sel = b.const("logit_rows", logit_rows(b.stage))
        picked = b.scratch("final_rows", m.dtype, (rows, h))
        b.emit("gather", picked, x, sel)
        x = picked
        if residual is not None:
            picked_r = b.scratch("final_residual", m.dtype, (rows, h))
            b.emit("gather", picked_r, residual, sel)
            residual = picked_r
    if residual is not None:
        total = b.buf(op.outputs[1].name, m.dtype, (rows, h)) if len(op.outputs) > 1 else \
            b.scratch("residual_sum", m.dtype, (rows, h))
        b.emit("add", total, x, residual)
        x = total
    out, eps = b.buf(out_spec.name, m.dtype, (rows, h)), float(np.float32(m.norm_eps))
    if m.norm is Norm.RMS:
        b.emit("rmsnorm", out, x, weights[0], eps)
    else:  # LayerNorm; without a bias parameter the bias is +0
        bias = weights[1] if len(weights) > 1 else broadcast(b.const("zero", np.zeros(1, np.float32), DType.FP32),
                                                             (h,))
        b.emit("layernorm", out, x, weights[0], bias, eps)


def linear(b: Builder, op: Op) -> None:
    """y = x W; with a bias, y = round(fp32(x W) + b): the bias is added before the one rounding. An
    fp8 W (its block scales ``<W>.scale`` the op's last input) is fp8.project's. A row-parallel
    projection (``params["row_parallel"]``: each device's y is a partial sum) with a bias is refused
    under tensor parallelism: adding it on every device would count it tp times."""
    m = b.model
    x_spec, w_spec, y_spec = op.inputs[0], op.inputs[1], op.outputs[0]
    scale_spec = fp8.scale_of(op, w_spec)
    bias_spec = next((t for t in op.inputs[2:] if t is not scale_spec), None)
    k, n = w_spec.shape
    rows = x_spec.numel // k
    x = b.buf(x_spec.name, x_spec.dtype, (rows, k))
    if w_spec.name == "embed_tokens":  # tied LM head: the embedding table, transposed by its strides
        table = b.buf("embed_tokens", m.dtype, (m.vocab_size, k))
        w = View(table.buffer, table.space, table.base_B, m.dtype, (k, n), (1, k))
    else:
        w = b.buf(w_spec.name, w_spec.dtype, (k, n))
    y = b.buf(y_spec.name, y_spec.dtype, (rows, n))
    scale = None if scale_spec is None else b.buf(scale_spec.name, DType.FP32, scale_spec.shape)
    if bias_spec is None:
        fp8.product(b, y, x, w, scale)
        return
    if b.tp > 1 and op.params.get("row_parallel"):
        raise InputError(f"{op.name}: a bias on a row-parallel projection is not lowered under tensor parallelism "
                         f"(it belongs after the all-reduce, once); compile with tp 1")
    acc = b.scratch("gemm_acc", DType.FP32, (rows, n))
    fp8.product(b, acc, x, w, scale)
    b.emit("add", y, acc, broadcast(b.buf(bias_spec.name, m.dtype, (n,)), (rows, n)))


def all_reduce(b: Builder, op: Op) -> None:
    x = op.inputs[0]
    view = b.buf(x.name, x.dtype, x.shape)
    b.emit("allreduce", b.buf(op.outputs[0].name, x.dtype, x.shape), view, b.tp)


def all_gather(b: Builder, op: Op) -> None:
    x, y = op.inputs[0], op.outputs[0]
    b.emit("allgather", b.buf(f"{y.name}.gathered", x.dtype, (b.tp, *x.shape)), b.buf(x.name, x.dtype, x.shape), b.tp)
