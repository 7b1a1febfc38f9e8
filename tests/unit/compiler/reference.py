"""The numerics definition of a compiled stage, composed from isa/numerics.py in the order
docs/compiler.md states: what a compiled program must reproduce bit for bit."""

from __future__ import annotations

import math

import numpy as np

from opbsim.compiler.lower import logit_rows
from opbsim.compiler.lower_attention import positions, requests
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.workloads.models import ModelConfig


def r16(x) -> np.ndarray:
    """Round fp32 values to bf16 and widen back: an instruction's bf16 output."""
    return N.widen(N.store(x, DType.BF16), DType.BF16)


def f32out(x) -> np.ndarray:
    return N.widen(N.store(x, DType.FP32), DType.FP32)


def attention(q, kc, vc, reqs, n_prefill, heads, kv, d):
    """q [T, H, d]; kc, vc [R, S, KV, d]; one request after another; prefill chunks are causal."""
    g = heads // kv
    scale = float(np.float32(1.0 / math.sqrt(d)))
    out = np.zeros((q.shape[0], heads, d), dtype=np.float32)
    for slot, r in enumerate(reqs):
        qr = q[r.row:r.row + r.new].reshape(r.new, kv, g, d).transpose(1, 2, 0, 3)  # [KV, g, new, d]
        k = kc[slot, :r.context].transpose(1, 2, 0)  # [KV, d, ctx]
        v = vc[slot, :r.context].transpose(1, 0, 2)  # [KV, ctx, d]
        for h in range(kv):
            for j in range(g):
                s = f32out(N.gemm(qr[h, j], k[h]))
                p = r16(N.softmax(s, scale, causal=slot < n_prefill, qpos=r.past))
                out[r.row:r.row + r.new, h * g + j] = r16(N.gemm(p, v[h]))
    return out.reshape(q.shape[0], heads * d)


def swiglu(x, w_gate_up, w_down, width):
    gu = r16(N.gemm(x, w_gate_up))
    a = r16(N.silu(gu[:, :width]))
    h = r16(N.mul(a, gu[:, width:]))
    return r16(N.gemm(h, w_down))


def stage(model: ModelConfig, stage, w: dict[str, np.ndarray], token_ids, caches) -> dict[str, np.ndarray]:
    """Values of a compiled stage. ``w`` maps weight names to fp32 values (exact bf16 numbers);
    ``caches[l]`` = (k, v) fp32 [R, S, KV, d] with the past rows filled. Returns named results."""
    H, KV, d = model.num_heads, model.num_kv_heads, model.head_dim
    T = stage.tokens
    reqs = requests(stage)
    pos = positions(stage)
    out: dict[str, np.ndarray] = {}
    x = w["embed_tokens"][token_ids]
    delta = None
    for layer in range(model.num_layers):
        L = f"L{layer}"
        if delta is not None:
            x = r16(N.add(x, delta))
        xn = r16(N.rmsnorm(x, w[f"{L}.attn_norm.weight"], np.float32(model.norm_eps)))
        qkv = r16(N.gemm(xn, w[f"{L}.w_qkv"]))
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
        hn = r16(N.rmsnorm(hs, w[f"{L}.ffn_norm.weight"], np.float32(model.norm_eps)))
        if model.is_moe_layer(layer):
            ffn_out, ids = moe(model, L, hn, w)
            out[f"{L}.topk_ids"] = ids
        else:
            ffn_out = swiglu(hn, w[f"{L}.ffn.w_gate_up"], w[f"{L}.ffn.w_down"], model.dense_ffn)
        out[f"{L}.ffn_out"] = ffn_out
        x, delta = hs, ffn_out
    rows = logit_rows(stage)
    fx = r16(N.add(x[rows], delta[rows]))
    fn = r16(N.rmsnorm(fx, w["final_norm.weight"], np.float32(model.norm_eps)))
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
        y = swiglu(hn[t], w[f"{L}.expert.{e}.w_gate_up"], w[f"{L}.expert.{e}.w_down"], model.expert_ffn)
        acc = N.scatter_add(acc, y, t, weights[t, j])
    if model.num_shared_experts:
        shared = swiglu(hn, w[f"{L}.shared.w_gate_up"], w[f"{L}.shared.w_down"],
                        model.num_shared_experts * model.shared_ffn)
        return r16(N.add(acc, shared)), ids
    return r16(acc), ids
