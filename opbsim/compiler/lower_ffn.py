"""Lowering of the feed-forward sublayer: router top-k, dispatch, expert and dense FFNs, combine.

Definitions (docs/compiler.md): routing probabilities p = softmax(logits) in fp32; the top-k
entries of p (ties to the lower expert); with ``norm_topk_prob`` each divided by their sum. A
SwiGLU FFN over rows x: gu = x W_gate_up (bf16; gate columns first), a = silu(gu_gate),
h = a * gu_up, y = h W_down (each rounded to bf16). The combine accumulates, in fp32 from +0 and in
expert order, w * y of each (token, expert) pair; adds the shared experts' output; rounds to bf16.
"""

from __future__ import annotations

import numpy as np

from opbsim.compiler.ir import View
from opbsim.compiler.lower import Lowerer
from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.workloads.ops import Op

__all__ = ["lower_topk", "lower_dispatch", "lower_ffn", "lower_combine"]


def _layer(lw: Lowerer, op: Op) -> tuple[str, int]:
    """The prefix of the layer's buffer names (``L3``) and its index, for an op of a decoder layer."""
    if lw.layer is None:
        raise ValueError(f"{op.name}: a MoE op outside the decoder layers")
    return f"L{lw.layer}", lw.layer


def lower_topk(lw: Lowerer, op: Op) -> None:
    m = lw.model
    L, _ = _layer(lw, op)
    T, E, k = lw.stage.tokens, m.num_experts, m.top_k
    logits = lw.buf(f"{L}.router_logits", DType.FP32, (T, E))
    probs = lw.scratch("router_probs", DType.FP32, (T, E))
    weights = lw.buf(f"{L}.topk_weights", DType.FP32, (T, k))
    ids = lw.buf(f"{L}.topk_ids", DType.I32, (T, k))
    lw.emit("softmax", probs, logits, 1.0, 0, 0)
    if not m.norm_topk_prob:
        lw.emit("topk", weights, ids, probs, k)
        return
    vals = lw.scratch("topk_vals", DType.FP32, (T, k))
    total = lw.scratch("topk_sum", DType.FP32, (T, 1))
    lw.emit("topk", vals, ids, probs, k)
    lw.emit("sum", total, vals)
    lw.emit("div", weights, vals, View(total.buffer, total.space, total.base_B, DType.FP32, (T, k), (1, 0)))


def lower_dispatch(lw: Lowerer, op: Op) -> None:
    m = lw.model
    L, layer = _layer(lw, op)
    T, h = lw.stage.tokens, m.hidden_size
    routing = lw.routing.layer(layer)
    x = lw.buf(f"{L}.h_norm", m.dtype, (T, h))
    for e, toks in enumerate(routing.tokens):
        if len(toks):
            idx = lw.const(f"{L}.expert.{e}.tokens", toks, expert=e)
            lw.emit("gather", expert_rows(lw, L, e, "x", len(toks)), x, idx)


def expert_rows(lw: Lowerer, L: str, e: int, which: str, n: int) -> View:
    """Expert e's dispatched rows (``x``) or outputs (``y``): a buffer of its own, in its weights'
    bank-bundle section, so experts on the xPU and on Logic-PIM in other sections overlap."""
    return lw.buf(f"{L}.expert.{e}.{which}", lw.model.dtype, (n, lw.model.hidden_size), expert=e)


_ACTIVATION = {"swiglu": "silu", "geglu": "gelu", "relu": "relu", "gelu": "gelu"}
_GATED = ("swiglu", "geglu")


def lower_ffn(lw: Lowerer, op: Op) -> None:
    m = lw.model
    L, layer = _layer(lw, op)
    act = op.params.get("act")
    if act not in _ACTIVATION:
        raise InputError(f"{op.name}: the {act} FFN is not lowered yet")
    if op.params.get("output_gate"):
        raise InputError(f"{op.name}: gated shared experts are not lowered yet")
    gated = act in _GATED
    h, width = m.hidden_size, op.params["ffn"]
    up_width = 2 * width if gated else width
    prefix = op.inputs[1].name.rsplit(".", 1)[0]  # the weights' prefix, e.g. L1.expert.3
    expert = op.params.get("expert")
    w_up = lw.buf(f"{prefix}.w_gate_up" if gated else f"{prefix}.w_up", m.dtype, (h, up_width), expert=expert)
    w_down = lw.buf(f"{prefix}.w_down", m.dtype, (width, h), expert=expert)
    if expert is not None:
        e, routing = expert, lw.routing.layer(layer)
        n = len(routing.tokens[e])
        x, y = expert_rows(lw, L, e, "x", n), expert_rows(lw, L, e, "y", n)
    else:
        T = lw.stage.tokens
        x = lw.buf(op.inputs[0].name, m.dtype, (T, h))
        y = lw.buf(op.outputs[0].name, m.dtype, (T, h))
    step = lw.pim_rows(h, up_width) or x.shape[0]
    for r in range(0, x.shape[0], step):
        rows = min(step, x.shape[0] - r)
        lw.layout.reset_scratch()
        gu = lw.scratch("gate_up", m.dtype, (rows, up_width))
        a = lw.scratch("act", m.dtype, (rows, width))
        lw.emit("gemm", gu, lw.rows(x, r, rows), w_up, grouped=expert is not None)
        lw.emit(_ACTIVATION[act], a, View(gu.buffer, gu.space, gu.base_B, m.dtype, (rows, width), (up_width, 1)))
        if gated:
            up = View(gu.buffer, gu.space, gu.base_B + width * 2, m.dtype, (rows, width), (up_width, 1))
            lw.emit("mul", a, a, up)
        lw.emit("gemm", lw.rows(y, r, rows), a, w_down, grouped=expert is not None)


def lower_combine(lw: Lowerer, op: Op) -> None:
    m = lw.model
    L, layer = _layer(lw, op)
    T, h, k = lw.stage.tokens, m.hidden_size, m.top_k
    routing = lw.routing.layer(layer)
    acc = lw.scratch("combine_acc", DType.FP32, (T, h))
    zero = lw.const("zero", np.zeros(1, dtype=np.float32), DType.FP32)
    lw.emit("scale", acc, lw.broadcast(zero, (T, h)), 1.0)
    weights = lw.buf(f"{L}.topk_weights", DType.FP32, (T, k))
    flat_w = View(weights.buffer, weights.space, weights.base_B, DType.FP32, (T * k, 1))
    for e, toks in enumerate(routing.tokens):
        if not len(toks):
            continue
        w_e = lw.scratch(f"w.{e}", DType.FP32, (len(toks), 1))
        lw.emit("gather", w_e, flat_w, lw.const(f"{L}.expert.{e}.slots", routing.slots[e], expert=e))
        w_vec = View(w_e.buffer, w_e.space, w_e.base_B, DType.FP32, (len(toks),))
        tok = lw.const(f"{L}.expert.{e}.tokens", toks, expert=e)
        lw.emit("scatter_add", acc, expert_rows(lw, L, e, "y", len(toks)), tok, w_vec)
    out = lw.buf(f"{L}.ffn_out", m.dtype, (T, h))
    if m.num_shared_experts:
        lw.emit("add", out, acc, lw.buf(f"{L}.shared_out", m.dtype, (T, h)))
    else:
        lw.emit("cvt", out, acc)
