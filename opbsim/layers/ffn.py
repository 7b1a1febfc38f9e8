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
from opbsim.layers import fp8
from opbsim.layers.attention import layer_prefix
from opbsim.layers.builder import Builder
from opbsim.layers.view import View, at, broadcast, rows
from opbsim.workloads.model_parts import SWIGLU_OAI_ALPHA, SWIGLU_OAI_LIMIT, RouterScoring
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
    """Each expert's rows, gathered; with the routing weight on the input (Llama 4) each row is then
    multiplied by its weight rounded to bf16 (``bf16(x * bf16(w))``)."""
    m = b.model
    L = layer_prefix(b, op)
    T, h, k = b.stage.tokens, m.hidden_size, m.top_k
    routing = b.routing.layer(b.layer)
    x = b.buf(f"{L}.h_norm", m.dtype, (T, h))
    on_input = bool(op.params.get("weight_on_input"))
    for e, toks in enumerate(routing.tokens):
        if len(toks):
            idx = b.const(f"{L}.expert.{e}.tokens", toks, expert=e)
            rows_e = expert_rows(b, L, e, "x", len(toks))
            b.emit("gather", rows_e, x, idx)
            if on_input:
                w_e = _expert_weights(b, L, e, routing, T, k)
                w16 = b.scratch(f"w16.{e}", m.dtype, w_e.shape)
                b.emit("cvt", w16, w_e)
                b.emit("mul", rows_e, rows_e, broadcast(w16, rows_e.shape))


def _expert_weights(b: Builder, L: str, e: int, routing, T: int, k: int) -> View:
    """[n, 1] fp32: the routing weight of each of expert e's rows (gathered from ``L.topk_weights``)."""
    flat_w = at(b.buf(f"{L}.topk_weights", DType.FP32, (T, k)), 0, (T * k, 1))
    w_e = b.scratch(f"w.{e}", DType.FP32, (len(routing.tokens[e]), 1))
    b.emit("gather", w_e, flat_w, b.const(f"{L}.expert.{e}.slots", routing.slots[e], expert=e))
    return w_e


def expert_rows(b: Builder, L: str, e: int, which: str, n: int) -> View:
    """Expert e's dispatched rows (``x``) or outputs (``y``): a buffer of its own, in its weights'
    bank-bundle section, so experts on the xPU and on Logic-PIM in other sections overlap."""
    return b.buf(f"{L}.expert.{e}.{which}", b.model.dtype, (n, b.model.hidden_size), expert=e)


_ACTIVATION = {"swiglu": "silu", "geglu": "gelu", "relu": "relu", "gelu": "gelu", "swiglu_oai": None}
_GATED = ("swiglu", "geglu", "swiglu_oai")


def ffn(b: Builder, op: Op) -> None:
    """An FFN over its rows (see the module docstring), in row tiles on PIM. With biases (gpt-oss's
    experts) each projection is ``bf16(fp32(x W) + b)``; with an output gate (Qwen's shared expert)
    ``y = bf16(y * bf16(sigmoid(bf16(x W_gate))))``; the clamped SwiGLU is ``_swiglu_oai``."""
    m = b.model
    L = layer_prefix(b, op)
    act = op.params.get("act")
    if act not in _ACTIVATION:
        raise InputError(f"{op.name}: the {act} FFN is not lowered yet")
    gated = act in _GATED
    h, width = m.hidden_size, op.params["ffn"]
    up_width = 2 * width if gated else width
    prefix = op.inputs[1].name.rsplit(".", 1)[0]  # the weights' prefix, e.g. L1.expert.3
    expert = op.params.get("expert")
    specs = {t.name: t for t in op.inputs}
    up_spec, down_spec = specs[f"{prefix}.w_gate_up" if gated else f"{prefix}.w_up"], specs[f"{prefix}.w_down"]
    w_up = b.buf(up_spec.name, up_spec.dtype, (h, up_width), expert=expert)
    w_down = b.buf(down_spec.name, down_spec.dtype, (width, h), expert=expert)
    up_scale, down_scale = (None if s is None else b.buf(s.name, DType.FP32, s.shape, expert=expert)
                            for s in (fp8.scale_of(op, up_spec), fp8.scale_of(op, down_spec)))
    biases = None
    if op.params.get("bias"):
        biases = (b.buf(f"{prefix}.b_gate_up" if gated else f"{prefix}.b_up", m.dtype, (up_width,), expert=expert),
                  b.buf(f"{prefix}.b_down", m.dtype, (h,), expert=expert))
    w_gate = b.buf(f"{prefix}.w_output_gate", m.dtype, (h, 1)) if op.params.get("output_gate") else None
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
        _project(b, gu, rows(x, r, n), (w_up, up_scale), biases and biases[0], grouped)
        gate = at(gu, 0, (n, width), (up_width, 1))
        if act == "swiglu_oai":
            _swiglu_oai(b, a, gate, at(gu, width, (n, width), (up_width, 1)))
        else:
            b.emit(_ACTIVATION[act], a, gate)
            if gated:
                b.emit("mul", a, a, at(gu, width, (n, width), (up_width, 1)))
        _project(b, rows(y, r, n), a, (w_down, down_scale), biases and biases[1], grouped)
        if w_gate is not None:
            g = b.scratch("output_gate", m.dtype, (n, 1))
            b.emit("gemm", g, rows(x, r, n), w_gate)
            b.emit("sigmoid", g, g)
            b.emit("mul", rows(y, r, n), rows(y, r, n), broadcast(g, (n, h)))


def _project(b: Builder, out: View, x: View, weight: tuple[View, View | None], bias: View | None,
             grouped: bool) -> None:
    """out = bf16(x w), or with a bias bf16(fp32(x w) + bias): one rounding. ``weight``: w and, for
    an fp8 w, its block scales (fp8.project)."""
    w, scale = weight
    product = b.scratch("projection", DType.FP32, out.shape) if bias is not None else out
    if scale is None:
        b.emit("gemm", product, x, w, grouped=grouped)
    else:
        fp8.project(b, product, x, w, scale, routed=grouped, grouped=grouped)
    if bias is not None:
        b.emit("add", out, product, broadcast(bias, out.shape))


def _swiglu_oai(b: Builder, out: View, gate: View, up: View) -> None:
    """gpt-oss's clamped SwiGLU (transformers GptOssExperts), each step rounded to bf16 as there:
    g = min(gate, 7); u = clamp(up, -7, 7); out = (u + 1) * (g * sigmoid(1.702 g))."""
    limit, alpha = float(SWIGLU_OAI_LIMIT), float(np.float32(SWIGLU_OAI_ALPHA))
    g = b.scratch("gate_clamped", out.dtype, out.shape)
    u = b.scratch("up_clamped", out.dtype, out.shape)
    b.emit("clamp", g, gate, 0.0, limit, 0)
    b.emit("clamp", u, up, -limit, limit, 1)
    b.emit("scale", out, g, alpha)
    b.emit("sigmoid", out, out)
    b.emit("mul", out, g, out)
    b.emit("add", u, u, broadcast(b.const("one", np.ones(1, dtype=np.float32), DType.FP32), out.shape))
    b.emit("mul", out, u, out)


def combine(b: Builder, op: Op) -> None:
    """acc = +0 (fp32); each expert in index order adds w * y of its rows (w = 1 where the weight was
    applied to the input); then the shared experts' output is added, or acc rounded, to bf16."""
    m = b.model
    L = layer_prefix(b, op)
    T, h, k = b.stage.tokens, m.hidden_size, m.top_k
    routing = b.routing.layer(b.layer)
    on_input = bool(op.params.get("weight_on_input"))
    acc = b.scratch("combine_acc", DType.FP32, (T, h))
    zero = b.const("zero", np.zeros(1, dtype=np.float32), DType.FP32)
    b.emit("scale", acc, broadcast(zero, (T, h)), 1.0)
    one = b.const("one", np.ones(1, dtype=np.float32), DType.FP32) if on_input else None
    for e, toks in enumerate(routing.tokens):
        if not len(toks):
            continue
        w_e = broadcast(one, (len(toks), 1)) if on_input else _expert_weights(b, L, e, routing, T, k)
        tok = b.const(f"{L}.expert.{e}.tokens", toks, expert=e)
        b.emit("scatter_add", acc, expert_rows(b, L, e, "y", len(toks)), tok, at(w_e, 0, (len(toks),), w_e.strides[:1]))
    out = b.buf(f"{L}.ffn_out", m.dtype, (T, h))
    if m.num_shared_experts:
        b.emit("add", out, acc, b.buf(f"{L}.shared_out", m.dtype, (T, h)))
    else:
        b.emit("cvt", out, acc)
