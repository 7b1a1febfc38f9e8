"""The feed-forward sublayer: router top-k, dispatch, expert and dense FFNs, combine.

Definitions (docs/compiler.md): routing probabilities p = softmax(logits) in fp32; the top-k
entries of p (ties to the lower expert); with ``norm_topk_prob`` each divided by their sum. A
SwiGLU FFN over rows x: gu = x W_gate_up (bf16; gate columns first), a = silu(gu_gate),
h = a * gu_up, y = h W_down (each rounded to bf16). The combine accumulates, in fp32 from +0 and in
expert order, w * y of each (token, expert) pair; adds the shared experts' output; rounds to bf16.
"""

from __future__ import annotations

import numpy as np

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.layers.attention import layer_prefix
from opbsim.layers.builder import Builder
from opbsim.layers.view import View, at, broadcast, rows
from opbsim.workloads.models import RouterScoring
from opbsim.workloads.ops import Op

__all__ = ["topk", "dispatch", "ffn", "combine", "expert_rows"]


def topk(b: Builder, op: Op) -> None:
    """The routing weights and experts of every token row, by the model's ``Router``:
    - softmax: p = softmax(logits); the top-k of p;
    - softmax over the top-k (gpt-oss): the top-k of the logits, then a softmax over those k;
    - sigmoid with a correction bias or groups (DeepSeek-V3): s = sigmoid(logits), ``topk_grouped``
      (the choice by s + bias within the kept groups, the weights s);
    - sigmoid without (Llama 4): the top-k of the logits, then the sigmoid of those k.
    Then with ``norm_topk_prob`` each weight divided by the sum of the k (sigmoid scoring adds
    fp32(1e-20) to the sum first, as DeepSeek-V3's reference code does), and with a routed scaling
    factor each multiplied by it."""
    m, r = b.model, b.model.router
    L = layer_prefix(b, op)
    T, E, k = b.stage.tokens, m.num_experts, m.top_k
    logits = b.buf(f"{L}.router_logits", DType.FP32, (T, E))
    over_all = r.scoring is RouterScoring.SOFTMAX or r.correction_bias or r.group_limited  # a score per expert
    scores = b.scratch("router_probs", DType.FP32, (T, E)) if over_all else None
    weights = b.buf(f"{L}.topk_weights", DType.FP32, (T, k))
    ids = b.buf(f"{L}.topk_ids", DType.I32, (T, k))
    scaled = r.routed_scaling_factor != 1.0
    chosen = b.scratch("topk_vals", DType.FP32, (T, k)) if m.norm_topk_prob or scaled else weights
    if r.scoring is RouterScoring.SOFTMAX:
        b.emit("softmax", scores, logits, 1.0, 0, 0)
        b.emit("topk", chosen, ids, scores, k)
    elif not over_all:  # the top-k of the logits, then softmax (gpt-oss) or sigmoid (Llama 4) of those k
        top = b.scratch("topk_logits", DType.FP32, (T, k))
        b.emit("topk", top, ids, logits, k)
        if r.scoring is RouterScoring.SOFTMAX_TOPK:
            b.emit("softmax", chosen, top, 1.0, 0, 0)
        else:
            b.emit("sigmoid", chosen, top)
    else:
        b.emit("sigmoid", scores, logits)
        bias = b.buf(op.inputs[1].name, DType.FP32, (E,)) if r.correction_bias else \
            broadcast(b.const("zero", np.zeros(1, dtype=np.float32), DType.FP32), (E,))
        b.emit("topk_grouped", chosen, ids, scores, bias, k, r.n_group, r.topk_group)
    if m.norm_topk_prob:
        total = b.scratch("topk_sum", DType.FP32, (T, 1))
        b.emit("sum", total, chosen)
        if r.scoring is RouterScoring.SIGMOID:
            b.emit("add", total, total, broadcast(b.const("sum_floor", np.full(1, 1e-20, np.float32), DType.FP32),
                                                  (T, 1)))
        normed = b.scratch("topk_norm", DType.FP32, (T, k)) if scaled else weights
        b.emit("div", normed, chosen, broadcast(total, (T, k)))
        chosen = normed
    if scaled:
        b.emit("scale", weights, chosen, float(np.float32(r.routed_scaling_factor)))


def dispatch(b: Builder, op: Op) -> None:
    m = b.model
    L = layer_prefix(b, op)
    T, h = b.stage.tokens, m.hidden_size
    routing = b.routing.layer(b.layer)
    x = b.buf(f"{L}.h_norm", m.dtype, (T, h))
    for e, toks in enumerate(routing.tokens):
        if len(toks):
            idx = b.const(f"{L}.expert.{e}.tokens", toks, expert=e)
            b.emit("gather", expert_rows(b, L, e, "x", len(toks)), x, idx)


def expert_rows(b: Builder, L: str, e: int, which: str, n: int) -> View:
    """Expert e's dispatched rows (``x``) or outputs (``y``): a buffer of its own, in its weights'
    bank-bundle section, so experts on the xPU and on Logic-PIM in other sections overlap."""
    return b.buf(f"{L}.expert.{e}.{which}", b.model.dtype, (n, b.model.hidden_size), expert=e)


_ACTIVATION = {"swiglu": "silu", "geglu": "gelu", "relu": "relu", "gelu": "gelu"}
_GATED = ("swiglu", "geglu")


def ffn(b: Builder, op: Op) -> None:
    m = b.model
    L = layer_prefix(b, op)
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
    w_up = b.buf(f"{prefix}.w_gate_up" if gated else f"{prefix}.w_up", m.dtype, (h, up_width), expert=expert)
    w_down = b.buf(f"{prefix}.w_down", m.dtype, (width, h), expert=expert)
    if expert is not None:
        n = len(b.routing.layer(b.layer).tokens[expert])
        x, y = expert_rows(b, L, expert, "x", n), expert_rows(b, L, expert, "y", n)
    else:
        T = b.stage.tokens
        x = b.buf(op.inputs[0].name, m.dtype, (T, h))
        y = b.buf(op.outputs[0].name, m.dtype, (T, h))
    grouped = expert is not None
    step = b.row_tile(h, up_width) or x.shape[0]
    for r in range(0, x.shape[0], step):
        n = min(step, x.shape[0] - r)
        b.new_part()
        gu = b.scratch("gate_up", m.dtype, (n, up_width))
        a = b.scratch("act", m.dtype, (n, width))
        b.emit("gemm", gu, rows(x, r, n), w_up, grouped=grouped)
        b.emit(_ACTIVATION[act], a, at(gu, 0, (n, width), (up_width, 1)))
        if gated:
            b.emit("mul", a, a, at(gu, width, (n, width), (up_width, 1)))
        b.emit("gemm", rows(y, r, n), a, w_down, grouped=grouped)


def combine(b: Builder, op: Op) -> None:
    m = b.model
    L = layer_prefix(b, op)
    T, h, k = b.stage.tokens, m.hidden_size, m.top_k
    routing = b.routing.layer(b.layer)
    acc = b.scratch("combine_acc", DType.FP32, (T, h))
    zero = b.const("zero", np.zeros(1, dtype=np.float32), DType.FP32)
    b.emit("scale", acc, broadcast(zero, (T, h)), 1.0)
    weights = b.buf(f"{L}.topk_weights", DType.FP32, (T, k))
    flat_w = at(weights, 0, (T * k, 1))
    for e, toks in enumerate(routing.tokens):
        if not len(toks):
            continue
        w_e = b.scratch(f"w.{e}", DType.FP32, (len(toks), 1))
        b.emit("gather", w_e, flat_w, b.const(f"{L}.expert.{e}.slots", routing.slots[e], expert=e))
        tok = b.const(f"{L}.expert.{e}.tokens", toks, expert=e)
        b.emit("scatter_add", acc, expert_rows(b, L, e, "y", len(toks)), tok, at(w_e, 0, (len(toks),)))
    out = b.buf(f"{L}.ffn_out", m.dtype, (T, h))
    if m.num_shared_experts:
        b.emit("add", out, acc, b.buf(f"{L}.shared_out", m.dtype, (T, h)))
    else:
        b.emit("cvt", out, acc)
