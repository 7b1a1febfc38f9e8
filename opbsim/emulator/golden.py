"""Float64 golden layers in plain numpy, written from the model definitions (Hugging Face
Mixtral / Llama / Qwen-MoE), independently of isa/numerics.py: they bound the error of the exact
numerics, they are not bit-exact to anything.

Weights use the Hugging Face ``nn.Linear`` layout, [out_features, in_features].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opbsim.emulator import golden_rope
from opbsim.errors import InputError

__all__ = ["GOLDEN_ROWS", "sample_rows",
    "MoEWeights", "MoEResult", "GQAWeights", "rmsnorm", "softmax", "silu", "rope",
    "moe_layer", "gqa_prefill", "gqa_decode", "relative_error",
]


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return z / np.sum(z, axis=-1, keepdims=True)


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def rope(x: np.ndarray, positions: np.ndarray, theta: float, scaling=None) -> np.ndarray:
    """Rotate halves of the last axis of x [..., T, D] by angles pos * f[i], f = theta^(-2i/D) or its
    long-context ``scaling`` (a RopeScaling), cos and sin times its attention factor (golden_rope.py)."""
    d = x.shape[-1]
    ang = np.asarray(positions, dtype=np.float64)[:, None] * golden_rope.inv_freq(theta, d, scaling)[None, :]
    m = golden_rope.attention_factor(scaling)
    cos, sin = np.cos(ang) * m, np.sin(ang) * m
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)


@dataclass(frozen=True)
class MoEWeights:
    """A sparse MoE block: routed experts w1/w3 [E, F, H], w2 [E, H, F]; shared experts
    (always on, unweighted) sw1/sw3 [S, Fs, H], sw2 [S, H, Fs] with S possibly 0."""

    norm: np.ndarray
    router: np.ndarray
    w1: np.ndarray
    w3: np.ndarray
    w2: np.ndarray
    sw1: np.ndarray
    sw3: np.ndarray
    sw2: np.ndarray


@dataclass(frozen=True)
class MoEResult:
    out: np.ndarray  # [T, H]: x + sum of the expert outputs
    selected: np.ndarray  # [T, k] expert indices, by descending probability
    weights: np.ndarray  # [T, k] routing weights


def _swiglu(x: np.ndarray, w1: np.ndarray, w3: np.ndarray, w2: np.ndarray) -> np.ndarray:
    return (silu(x @ w1.T) * (x @ w3.T)) @ w2.T


def moe_layer(x: np.ndarray, w: MoEWeights, top_k: int, eps: float, *, renormalize: bool = True,
              selected: np.ndarray | None = None) -> MoEResult:
    """x + MoE(RMSNorm(x)): router softmax over experts, top-k, (renormalised) weights, SwiGLU
    experts, shared experts, weighted combine, residual.

    ``selected`` fixes the chosen experts (the weights are still computed here), so that an
    error measurement is not dominated by a near tie that rounding resolves the other way.
    """
    h = rmsnorm(x, w.norm, eps)
    probs = softmax(h @ w.router.T)
    if selected is None:
        selected = np.argsort(-probs, axis=-1, kind="stable")[:, :top_k]
    gates = np.take_along_axis(probs, selected, axis=-1)
    if renormalize:
        gates = gates / gates.sum(axis=-1, keepdims=True)
    y = np.zeros_like(x)
    for e in range(w.w1.shape[0]):
        tok, slot = np.nonzero(selected == e)
        if tok.size:
            y[tok] += gates[tok, slot][:, None] * _swiglu(h[tok], w.w1[e], w.w3[e], w.w2[e])
    for s in range(w.sw1.shape[0]):
        y += _swiglu(h, w.sw1[s], w.sw3[s], w.sw2[s])
    return MoEResult(x + y, np.asarray(selected), gates)


@dataclass(frozen=True)
class GQAWeights:
    """Attention with n_heads query heads sharing n_kv_heads key/value heads of size head_dim:
    wq [NH*Dh, H], wk / wv [KVH*Dh, H], wo [H, NH*Dh], norm [H]."""

    norm: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    n_heads: int
    n_kv_heads: int
    head_dim: int


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """q [NH, Tq, Dh], k / v [KVH, Tk, Dh] (head h uses kv head h // (NH/KVH)); mask [Tq, Tk]
    True where a query may not look."""
    kvh, tq, dh = k.shape[0], q.shape[1], q.shape[2]
    q = q.reshape(kvh, -1, tq, dh)  # [KVH, group, Tq, Dh]: the query heads of each kv head
    scores = q @ k[:, None].transpose(0, 1, 3, 2) / np.sqrt(dh)
    if mask is not None:
        scores = np.where(mask, -np.inf, scores)
    return (softmax(scores) @ v[:, None]).reshape(-1, tq, v.shape[-1])


def _project(x: np.ndarray, w: GQAWeights, positions: np.ndarray, theta: float, eps: float, scaling=None):
    h = rmsnorm(x, w.norm, eps)
    t, dh = x.shape[0], w.head_dim
    q = (h @ w.wq.T).reshape(t, w.n_heads, dh).transpose(1, 0, 2)
    k = (h @ w.wk.T).reshape(t, w.n_kv_heads, dh).transpose(1, 0, 2)
    v = (h @ w.wv.T).reshape(t, w.n_kv_heads, dh).transpose(1, 0, 2)
    return rope(q, positions, theta, scaling), rope(k, positions, theta, scaling), v


def gqa_prefill(x: np.ndarray, w: GQAWeights, theta: float, eps: float, scaling=None):
    """One sequence x [T, H] at positions 0..T-1, causal. Returns (x + attention output, the
    rotated keys [KVH, T, Dh], the values [KVH, T, Dh]) -- the KV cache a decode continues.
    ``scaling``: the model's RopeScaling (None: unscaled), as gqa_decode's."""
    t = x.shape[0]
    q, k, v = _project(x, w, np.arange(t), theta, eps, scaling)
    causal = np.arange(t)[None, :] > np.arange(t)[:, None]
    o = _attend(q, k, v, causal).transpose(1, 0, 2).reshape(t, -1)
    return x + o @ w.wo.T, k, v


def gqa_decode(x: np.ndarray, w: GQAWeights, k_cache: list[np.ndarray], v_cache: list[np.ndarray],
               theta: float, eps: float, scaling=None) -> np.ndarray:
    """One new token per sequence: x [B, H]; sequence b has k_cache[b] / v_cache[b] of shape
    [KVH, L_b, Dh] (keys already rotated), and its token sits at position L_b. Returns x + output."""
    q, k, v = _project(x, w, np.array([c.shape[1] for c in k_cache]), theta, eps, scaling)  # [heads, B, Dh]
    o = np.empty((x.shape[0], w.n_heads * w.head_dim))
    for b in range(x.shape[0]):
        keys = np.concatenate([k_cache[b], k[:, b:b + 1]], axis=1)
        values = np.concatenate([v_cache[b], v[:, b:b + 1]], axis=1)
        o[b] = _attend(q[:, b:b + 1], keys, values, None).reshape(-1)
    return x + o @ w.wo.T


def relative_error(y: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(max |y - ref| / max |ref|, mean |y - ref| / mean |ref|): the error relative to the size of
    the output, in the infinity norm and in the 1-norm (robust to outputs that cross zero)."""
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    diff = np.abs(y - ref)
    return float(diff.max() / np.abs(ref).max()), float(diff.mean() / np.abs(ref).mean())


GOLDEN_ROWS = 8  # tokens a layer check compares with the golden by default


def sample_rows(tokens: int, rows: int | None, seed: int) -> np.ndarray:
    """The tokens a check compares with the golden: ``rows`` of ``tokens`` drawn without
    replacement by ``seed`` (ascending), or all of them when ``rows`` is None or not smaller."""
    if rows is None or rows >= tokens:
        return np.arange(tokens)
    if rows < 1:
        raise InputError(f"the golden sample must be at least 1 row, got {rows}")
    return np.sort(np.random.default_rng([seed, 0x901D]).choice(tokens, size=rows, replace=False))
