"""Multi-head latent attention in float64: the expanded form for every query (prefill and decode
alike), from the weights' exact values, independent of the ISA and of the absorbed decode.

Inputs as the layer definitions lay them out (layers/mla.py): ``w`` maps weight names (without the
``L<l>.`` prefix) to float64 arrays [in, out]; ``past[i]`` the cached rows [past_i, c + dr] of
request i (latent, RoPE key; exact bf16 values). Returns the attention output [T, H dv] before the
output projection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from opbsim.emulator import golden_rope
from opbsim.emulator.golden import rmsnorm, rope, softmax

__all__ = ["mla_attention"]


def mla_attention(x_norm: np.ndarray, w: Mapping[str, np.ndarray], mla, heads: int, reqs: Sequence,
                  past: Sequence[np.ndarray], theta: float, eps: float, scaling=None) -> np.ndarray:
    """``scaling``: the model's RopeScaling (None: unscaled): RoPE's frequencies and cos/sin factor, and
    DeepSeek's softmax-scale factor yarn_get_mscale(factor, mscale_all_dim)^2 (golden_rope.py)."""
    c, dn, dr, dv = mla.kv_lora_rank, mla.qk_nope_head_dim, mla.qk_rope_head_dim, mla.v_head_dim
    T = x_norm.shape[0]
    scale = golden_rope.mla_scale_factor(scaling) / np.sqrt(dn + dr)
    if mla.q_lora_rank:
        q = rmsnorm(x_norm @ w["w_q_a"], w["w_q_a_norm"], eps) @ w["w_q_b"]
    else:
        q = x_norm @ w["w_q"]
    q = q.reshape(T, heads, dn + dr)
    kv_a = x_norm @ w["w_kv_a"]
    latent = rmsnorm(kv_a[:, :c], w["w_kv_a_norm"], eps)
    out = np.zeros((T, heads, dv))
    w_kv_b = w["w_kv_b"].reshape(c, heads, dn + dv)
    for r, old in zip(reqs, past):
        pos = np.arange(r.past, r.context)
        rows = slice(r.row, r.row + r.new)
        lat = np.concatenate([old[:, :c], latent[rows]])  # [ctx, c]
        k_rope = np.concatenate([old[:, c:], rope(kv_a[rows, c:], pos, theta, scaling)])  # [ctx, dr]
        q_nope = q[rows, :, :dn].transpose(1, 0, 2)  # [H, new, dn]
        q_rope = rope(q[rows, :, dn:].transpose(1, 0, 2), pos, theta, scaling)
        kv = np.einsum("tc,chd->htd", lat, w_kv_b)  # [H, ctx, dn + dv]
        scores = (q_nope @ kv[..., :dn].transpose(0, 2, 1) + q_rope @ k_rope.T) * scale
        visible = np.arange(r.context)[None, :] <= pos[:, None]  # causal: a query sees keys up to its position
        scores = np.where(visible[None], scores, -np.inf)
        out[rows] = (softmax(scores) @ kv[..., dn:]).transpose(1, 0, 2)
    return out.reshape(T, heads * dv)
