"""The numerics definition of a compiled stage, composed from isa/numerics.py in the order
docs/compiler.md states: what a compiled program must reproduce bit for bit.

Weights come through a mapping from buffer name to fp32 values (exact bf16 numbers); a lazy
mapping lets a full-size layer be checked without holding a float32 copy of every weight.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from opbsim.compiler.lower import logit_rows
from opbsim.compiler.lower_attention import positions, requests
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.workloads.models import FFNAct, ModelConfig, Norm


def r16(x) -> np.ndarray:
    """Round fp32 values to bf16 and widen back: an instruction's bf16 output."""
    return N.widen(N.store(x, DType.BF16), DType.BF16)


def f32out(x) -> np.ndarray:
    return N.widen(N.store(x, DType.FP32), DType.FP32)


def attention(q, kc, vc, reqs, n_prefill, heads, kv, d):
    """q [T, H, d]; kc, vc [R, S, KV, d]; one request after another, the g query heads of a KV head
    together (rows of one product: each row's sums are its own); prefill chunks are causal."""
    g = heads // kv
    scale = float(np.float32(1.0 / math.sqrt(d)))
    out = np.zeros((q.shape[0], heads, d), dtype=np.float32)
    for slot, r in enumerate(reqs):
        qr = q[r.row:r.row + r.new].reshape(r.new, kv, g, d).transpose(1, 2, 0, 3)  # [KV, g, new, d]
        k = kc[slot, :r.context].transpose(1, 2, 0)  # [KV, d, ctx]
        v = vc[slot, :r.context].transpose(1, 0, 2)  # [KV, ctx, d]
        for h in range(kv):
            rows = qr[h].reshape(g * r.new, d)  # row j * new + t
            s = f32out(N.gemm(rows, k[h])).reshape(g, r.new, -1)
            p = r16(N.softmax(s, scale, causal=slot < n_prefill, qpos=r.past)).reshape(g * r.new, -1)
            o = r16(N.gemm(p, v[h])).reshape(g, r.new, d)
            out[r.row:r.row + r.new, h * g:(h + 1) * g] = o.transpose(1, 0, 2)
    return out.reshape(q.shape[0], heads * d)


def ffn(model: ModelConfig, x, w, prefix: str, width: int):
    """SwiGLU / GeGLU (gate columns first) or a 2-matrix ReLU / GELU FFN."""
    if model.ffn_act.gated:
        gate = N.silu if model.ffn_act is FFNAct.SWIGLU else N.gelu
        gu = r16(N.gemm(x, w[f"{prefix}.w_gate_up"]))
        a = r16(N.mul(r16(gate(gu[:, :width])), gu[:, width:]))
    else:
        act = N.relu if model.ffn_act is FFNAct.RELU else N.gelu
        a = r16(act(r16(N.gemm(x, w[f"{prefix}.w_up"]))))
    return r16(N.gemm(a, w[f"{prefix}.w_down"]))


def norm(model: ModelConfig, x, w, prefix: str):
    eps = np.float32(model.norm_eps)
    if model.norm is Norm.RMS:
        return r16(N.rmsnorm(x, w[f"{prefix}.weight"], eps))
    bias = w.get(f"{prefix}.bias", np.zeros(x.shape[-1], np.float32))
    return r16(N.layernorm(x, w[f"{prefix}.weight"], bias, eps))


def linear(x, w, name: str, bias: str | None = None):
    """bf16(x W), or with a bias bf16(fp32(x W) + b)."""
    y = N.gemm(x, w[name])
    return r16(N.add(f32out(y), w[bias])) if bias and bias in w else r16(y)


def stage(model: ModelConfig, stage, w: Mapping[str, np.ndarray], token_ids, caches, *,
          layers: Sequence[int] | None = None, stream=None, delta=None) -> dict[str, np.ndarray]:
    """Values of a compiled stage. ``w`` maps weight names to fp32 values (exact bf16 numbers);
    ``caches[l]`` = (k, v) fp32 [R, S, KV, d] with the past rows filled. Returns named results.

    By default the whole model from ``token_ids``; with ``layers`` only those decoder layers,
    from the residual ``stream`` (and the previous layer's ``delta``), without the LM head."""
    H, KV, d = model.num_heads, model.num_kv_heads, model.head_dim
    T = stage.tokens
    reqs = requests(stage)
    pos = positions(stage)
    out: dict[str, np.ndarray] = {}
    if layers is None:
        x = w["embed_tokens"][token_ids]
        if model.learned_positions:
            x = r16(N.add(x, w["embed_positions"][pos]))
        delta = None
    else:
        x = stream
    for layer in (range(model.num_layers) if layers is None else layers):
        L = f"L{layer}"
        if delta is not None:
            x = r16(N.add(x, delta))
            out[f"{L}.x"] = x
        xn = norm(model, x, w, f"{L}.attn_norm")
        qkv = linear(xn, w, f"{L}.w_qkv", f"{L}.b_qkv")
        q = qkv[:, :H * d].reshape(T, H, d)
        k = qkv[:, H * d:(H + KV) * d].reshape(T, KV, d)
        v = qkv[:, (H + KV) * d:].reshape(T, KV, d)
        if model.has_rope:
            theta = float(np.float32(model.rope_theta))
            q = r16(N.rope(q.transpose(1, 0, 2), pos, theta)).transpose(1, 0, 2)
            k = r16(N.rope(k.transpose(1, 0, 2), pos, theta)).transpose(1, 0, 2)
        kc, vc = (c.copy() for c in caches[layer])
        for slot, r in enumerate(reqs):
            kc[slot, r.past:r.context] = k[r.row:r.row + r.new]
            vc[slot, r.past:r.context] = v[r.row:r.row + r.new]
        out[f"{L}.k_cache"], out[f"{L}.v_cache"] = kc, vc
        attn = attention(q, kc, vc, reqs, len(stage.prefill), H, KV, d)
        attn_out = r16(N.gemm(attn, w[f"{L}.w_o"]))
        hs = r16(N.add(x, attn_out))
        hn = norm(model, hs, w, f"{L}.ffn_norm")
        if model.is_moe_layer(layer):
            ffn_out, ids = moe(model, L, hn, w)
            out[f"{L}.topk_ids"] = ids
        else:
            ffn_out = ffn(model, hn, w, f"{L}.ffn", model.dense_ffn)
        out[f"{L}.ffn_out"] = ffn_out
        out[f"{L}.h"] = hs
        x, delta = hs, ffn_out
    if layers is not None:
        return out
    rows = logit_rows(stage)
    fx = r16(N.add(x[rows], delta[rows]))
    fn = norm(model, fx, w, "final_norm")
    table = w["embed_tokens"].T if model.tie_word_embeddings else w["lm_head"]
    out["logits"] = r16(N.gemm(fn, table))
    return out


def moe(model: ModelConfig, L: str, hn, w):
    T, k, E = hn.shape[0], model.top_k, model.num_experts
    logits = f32out(N.gemm(hn, w[f"{L}.w_router"]))
    probs = f32out(N.softmax(logits, 1.0))
    vals, ids = N.topk(probs, k)
    weights = f32out(N.div(vals, N.reduce_sum(vals))) if model.norm_topk_prob else vals
    acc = np.zeros((T, model.hidden_size), dtype=np.float32)
    for e in range(E):
        t, j = np.nonzero(ids == e)
        order = np.argsort(t, kind="stable")
        t, j = t[order], j[order]
        if not len(t):
            continue
        y = ffn(model, hn[t], w, f"{L}.expert.{e}", model.expert_ffn)
        acc = N.scatter_add(acc, y, t, weights[t, j])
    if model.num_shared_experts:
        shared = ffn(model, hn, w, f"{L}.shared", model.num_shared_experts * model.shared_ffn)
        return r16(N.add(acc, shared)), ids
    return r16(acc), ids
