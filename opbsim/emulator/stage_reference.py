"""The numerics definition of a compiled stage, composed from isa/numerics.py in the order
docs/compiler.md states: what a compiled program must reproduce bit for bit.

Weights come through a mapping from buffer name to fp32 values (exact bf16 numbers); a lazy
mapping lets a full-size layer be checked without holding a float32 copy of every weight.

Every product is ``numerics.gemm`` by default. A caller may pass ``gemm`` (a function that
computes the same values, as ordered_gemm.gemm does) and ``times(x, name)`` (x times the weight
``name``, e.g. ordered_gemm.gemm_bf16 on the weight's bf16 bits, so no fp32 copy is made).
Attention forms the products of every request of the same shape (and every KV head) as one
batched product: the values are those of one request at a time, the batch axes being
independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from opbsim.compiler.lower import logit_rows
from opbsim.compiler.lower_attention import positions, requests
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.workloads.models import FFNAct, ModelConfig, Norm

Gemm = Callable[[np.ndarray, np.ndarray], np.ndarray]  # numerics.gemm(a, b) or the same values
Times = Callable[[np.ndarray, str], np.ndarray]  # x times the weight of that name


def r16(x) -> np.ndarray:
    """Round fp32 values to bf16 and widen back: an instruction's bf16 output."""
    return N.widen(N.store(x, DType.BF16), DType.BF16)


def f32out(x) -> np.ndarray:
    return N.widen(N.store(x, DType.FP32), DType.FP32)


def attention(q, kc, vc, reqs, n_prefill, heads, kv, d, gemm: Gemm = N.gemm):
    """q [T, H, d]; kc, vc [R, S, KV, d]; the g query heads of a KV head together (rows of one
    product: each row's sums are its own); prefill chunks are causal. Requests of the same
    (new, past, causal) are computed as one batch."""
    g = heads // kv
    scale = float(np.float32(1.0 / math.sqrt(d)))
    out = np.zeros((q.shape[0], heads, d), dtype=np.float32)
    groups: dict[tuple[int, int, bool], list[int]] = {}
    for slot, r in enumerate(reqs):
        groups.setdefault((r.new, r.past, slot < n_prefill), []).append(slot)
    for (new, past, causal), slots in groups.items():
        ctx = past + new
        rows = np.stack([q[reqs[s].row:reqs[s].row + new] for s in slots])  # [n, new, H, d]
        rows = rows.reshape(len(slots), new, kv, g, d).transpose(0, 2, 3, 1, 4)  # [n, KV, g, new, d]
        rows = rows.reshape(len(slots), kv, g * new, d)  # row j * new + t
        idx = slice(slots[0], slots[-1] + 1) if slots[-1] - slots[0] == len(slots) - 1 else np.asarray(slots)
        k = kc[idx, :ctx].transpose(0, 2, 3, 1)  # [n, KV, d, ctx] (a view where the slots are a range)
        v = vc[idx, :ctx].transpose(0, 2, 1, 3)  # [n, KV, ctx, d]
        s = f32out(_by_head(gemm, rows, k)).reshape(len(slots), kv, g, new, ctx)
        p = r16(N.softmax(s, scale, causal=causal, qpos=past)).reshape(len(slots), kv, g * new, ctx)
        o = r16(_by_head(gemm, p, v)).reshape(len(slots), kv, g, new, d).transpose(0, 3, 1, 2, 4)
        for i, slot in enumerate(slots):
            out[reqs[slot].row:reqs[slot].row + new] = o[i].reshape(new, heads, d)
    return out.reshape(q.shape[0], heads * d)


def _by_head(gemm: Gemm, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """gemm over batch axes [n, KV], one KV head at a time (a view of each, no copy of the cache)."""
    return np.stack([gemm(a[:, h], b[:, h]) for h in range(a.shape[1])], axis=1)


def _times(w: Mapping[str, np.ndarray], gemm: Gemm, times: Times | None) -> Times:
    return times or (lambda x, name: gemm(x, w[name]))


def ffn(model: ModelConfig, x, w, prefix: str, width: int, times: Times | None = None):
    """SwiGLU / GeGLU (gate columns first) or a 2-matrix ReLU / GELU FFN."""
    times = _times(w, N.gemm, times)
    if model.ffn_act.gated:
        gate = N.silu if model.ffn_act is FFNAct.SWIGLU else N.gelu
        gu = r16(times(x, f"{prefix}.w_gate_up"))
        a = r16(N.mul(r16(gate(gu[:, :width])), gu[:, width:]))
    else:
        act = N.relu if model.ffn_act is FFNAct.RELU else N.gelu
        a = r16(act(r16(times(x, f"{prefix}.w_up"))))
    return r16(times(a, f"{prefix}.w_down"))


def norm(model: ModelConfig, x, w, prefix: str):
    eps = np.float32(model.norm_eps)
    if model.norm is Norm.RMS:
        return r16(N.rmsnorm(x, w[f"{prefix}.weight"], eps))
    bias = w.get(f"{prefix}.bias", np.zeros(x.shape[-1], np.float32))
    return r16(N.layernorm(x, w[f"{prefix}.weight"], bias, eps))


def linear(x, w, name: str, bias: str | None = None, times: Times | None = None):
    """bf16(x W), or with a bias bf16(fp32(x W) + b)."""
    y = _times(w, N.gemm, times)(x, name)
    return r16(N.add(f32out(y), w[bias])) if bias and bias in w else r16(y)


def stage(model: ModelConfig, stage, w: Mapping[str, np.ndarray], token_ids, caches, *,
          layers: Sequence[int] | None = None, stream=None, delta=None, gemm: Gemm = N.gemm,
          times: Times | None = None, routed: Callable[[int, np.ndarray], None] | None = None,
          in_place: bool = False) -> dict[str, np.ndarray]:
    """Values of a compiled stage. ``w`` maps weight names to fp32 values (exact bf16 numbers);
    ``caches[l]`` = (k, v) fp32 [R, S, KV, d] with the past rows filled. Returns named results.

    By default the whole model from ``token_ids``; with ``layers`` only those decoder layers,
    from the residual ``stream`` (and the previous layer's ``delta``), without the LM head.
    ``gemm`` and ``times``: see the module text. ``routed(layer, ids)`` is told each MoE layer's
    routing (int32 [T, top_k]) once it is known, before its experts are computed (a caller may
    then compile for it and place the experts' weights where ``w`` reads them). ``in_place``: the
    stage's new cache rows are written into ``caches`` itself, which become the returned caches
    (no copy; for a caller that has no further use for the old ones)."""
    times = _times(w, gemm, times)
    out: dict[str, np.ndarray] = {}
    if layers is None:
        x = w["embed_tokens"][token_ids]
        if model.learned_positions:
            x = r16(N.add(x, w["embed_positions"][positions(stage)]))
        delta = None
    else:
        x = stream
    for layer in (range(model.num_layers) if layers is None else layers):
        L = f"L{layer}"
        hs, hn = _attention_block(model, stage, w, caches[layer], L, x, delta, out, gemm, times, in_place)
        if model.is_moe_layer(layer):
            ffn_out, ids = moe(model, L, hn, w, times, routed and (lambda ids, layer=layer: routed(layer, ids)))
            out[f"{L}.topk_ids"] = ids
        else:
            ffn_out = ffn(model, hn, w, f"{L}.ffn", model.dense_ffn, times)
        out[f"{L}.ffn_out"] = ffn_out
        out[f"{L}.h"] = hs
        x, delta = hs, ffn_out
    if layers is not None:
        return out
    rows = logit_rows(stage)
    fx = r16(N.add(x[rows], delta[rows]))
    fn = norm(model, fx, w, "final_norm")
    out["logits"] = r16(gemm(fn, w["embed_tokens"].T) if model.tie_word_embeddings else times(fn, "lm_head"))
    return out


def _attention_block(model: ModelConfig, stage, w, cache, L: str, x, delta, out: dict, gemm: Gemm, times: Times,
                     in_place: bool):
    """(hs, hn) of one layer: hs = x (+ delta) + attention, hn = its FFN norm. Records ``L.x``
    (where there is a delta) and the layer's updated caches in ``out``."""
    H, KV, d = model.num_heads, model.num_kv_heads, model.head_dim
    T = stage.tokens
    reqs = requests(stage)
    pos = positions(stage)
    if delta is not None:
        x = r16(N.add(x, delta))
        out[f"{L}.x"] = x
    xn = norm(model, x, w, f"{L}.attn_norm")
    qkv = linear(xn, w, f"{L}.w_qkv", f"{L}.b_qkv", times)
    q = qkv[:, :H * d].reshape(T, H, d)
    k = qkv[:, H * d:(H + KV) * d].reshape(T, KV, d)
    v = qkv[:, (H + KV) * d:].reshape(T, KV, d)
    if model.has_rope:
        theta = float(np.float32(model.rope_theta))
        q = r16(N.rope(q.transpose(1, 0, 2), pos, theta)).transpose(1, 0, 2)
        k = r16(N.rope(k.transpose(1, 0, 2), pos, theta)).transpose(1, 0, 2)
    kc, vc = cache if in_place else (c.copy() for c in cache)
    for slot, r in enumerate(reqs):
        kc[slot, r.past:r.context] = k[r.row:r.row + r.new]
        vc[slot, r.past:r.context] = v[r.row:r.row + r.new]
    out[f"{L}.k_cache"], out[f"{L}.v_cache"] = kc, vc
    attn = attention(q, kc, vc, reqs, len(stage.prefill), H, KV, d, gemm)
    attn_out = r16(times(attn, f"{L}.w_o"))
    hs = r16(N.add(x, attn_out))
    return hs, norm(model, hs, w, f"{L}.ffn_norm")


def _route(model: ModelConfig, L: str, hn, w, times: Times):
    """(ids [T, k] int32, weights [T, k] fp32): the router's top-k experts and their weights."""
    logits = f32out(times(hn, f"{L}.w_router"))
    probs = f32out(N.softmax(logits, 1.0))
    vals, ids = N.topk(probs, model.top_k)
    weights = f32out(N.div(vals, N.reduce_sum(vals))) if model.norm_topk_prob else vals
    return ids, weights


def moe(model: ModelConfig, L: str, hn, w, times: Times | None = None,
        routed: Callable[[np.ndarray], None] | None = None):
    times = _times(w, N.gemm, times)
    ids, weights = _route(model, L, hn, w, times)
    if routed:
        routed(ids)
    acc = np.zeros((hn.shape[0], model.hidden_size), dtype=np.float32)
    for e in range(model.num_experts):
        t, j = np.nonzero(ids == e)
        order = np.argsort(t, kind="stable")
        t, j = t[order], j[order]
        if not len(t):
            continue
        y = ffn(model, hn[t], w, f"{L}.expert.{e}", model.expert_ffn, times)
        acc = N.scatter_add(acc, y, t, weights[t, j])
    if model.num_shared_experts:
        shared = ffn(model, hn, w, f"{L}.shared", model.num_shared_experts * model.shared_ffn, times)
        return r16(N.add(acc, shared)), ids
    return r16(acc), ids
