"""Whole layers as the kernels composed in the order the validation programs run them.

``moe_layer``: the Mixtral-shaped MoE layer of emulator/validation/moe.py (RMSNorm, router
GEMM against the transposed [E, H] weight, softmax, top-k, renormalised gates; the host reads
the top-k indices and builds each expert's token list, as a runtime does; then the residual in
fp32, shared experts accumulated with gemm_acc, per routed expert gather, SwiGLU, down
projection and weighted scatter_add; the bf16 output). ``gqa_decode`` and ``gqa_prefill``:
the attention layers of emulator/validation/gqa.py (RMSNorm, Q/K/V, RoPE on a [heads, T, Dh]
view, the KV-cache append with scatter, then per sequence gemm -> softmax -> gemm batched over
[KV heads, group] with the keys shared by a group through a stride-0 axis, the output
projection and the residual).

Inputs and outputs are raw host arrays (bf16 as uint16 patterns, HF weight layouts); all the
arithmetic runs on the ``Ops`` given, so the same code runs on the GPU and on numerics.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opbsim.reference.interface import BF16, FP32, Ops

__all__ = ["MoEWeights", "GQAWeights", "moe_layer", "gqa_decode", "gqa_prefill"]


@dataclass(frozen=True)
class MoEWeights:
    """Raw bf16 weights in HF layouts: router [E, H]; per expert w1, w3 [F, H] and w2 [H, F];
    shared experts likewise (sw1, sw3, sw2)."""

    ln_w: np.ndarray
    wr: np.ndarray
    w1: tuple[np.ndarray, ...]
    w3: tuple[np.ndarray, ...]
    w2: tuple[np.ndarray, ...]
    sw1: tuple[np.ndarray, ...] = ()
    sw3: tuple[np.ndarray, ...] = ()
    sw2: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class GQAWeights:
    """Raw bf16 weights in HF layouts (wq [NH*Dh, H], wk / wv [KVH*Dh, H], wo [H, NH*Dh]) and
    the attention geometry."""

    ln_w: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    heads: int
    kv_heads: int
    head_dim: int
    theta: float
    eps: float

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def scale(self) -> float:
        """fp32(1 / sqrt(Dh)), the softmax scale of the programs."""
        return float(np.float32(1.0 / np.sqrt(self.head_dim)))


def _weight_t(ops: Ops, w: np.ndarray):
    """An HF [out, in] weight as the [in, out] operand: a transposed view, read in place."""
    return ops.transpose(ops.upload(w))


def _swiglu(ops: Ops, xin, w1: np.ndarray, w3: np.ndarray):
    g = ops.gemm(xin, _weight_t(ops, w1), FP32)
    u = ops.gemm(xin, _weight_t(ops, w3), FP32)
    return ops.binary("mul", ops.unary("silu", g, FP32), u, BF16)


def moe_layer(ops: Ops, x: np.ndarray, w: MoEWeights, top_k: int, eps: float) -> dict[str, np.ndarray]:
    """y (bf16 [T, H]), topi (i32 [T, k]) and gates (fp32 [T, k]) of the MoE layer."""
    t = x.shape[0]
    xs = ops.upload(x)
    xn = ops.rmsnorm(xs, ops.upload(w.ln_w), eps, BF16)
    probs = ops.softmax(ops.gemm(xn, _weight_t(ops, w.wr), FP32), FP32)
    topv, topi = ops.topk(probs, top_k, FP32)
    topsum = ops.reduce("sum", topv, FP32)
    gates = ops.binary("div", topv, ops.view(topsum, (t, top_k), (1, 0)), FP32)
    topi_h, gates_h = ops.download(topi), ops.download(gates)
    out = ops.cvt(xs, FP32)
    for w1, w3, w2 in zip(w.sw1, w.sw3, w.sw2):
        out = ops.gemm(_swiglu(ops, xn, w1, w3), _weight_t(ops, w2), FP32, acc=out)
    for e in range(len(w.w1)):
        tok, slot = np.nonzero(topi_h == e)
        if not tok.size:
            continue
        route = ops.upload(tok.astype(np.int32))
        ye = ops.gemm(_swiglu(ops, ops.gather(xn, route), w.w1[e], w.w3[e]), _weight_t(ops, w.w2[e]), FP32)
        ops.scatter_add(out, ye, route, ops.upload(np.ascontiguousarray(gates_h[tok, slot])))
    return {"y": ops.download(ops.cvt(out, BF16)), "topi": topi_h, "gates": gates_h}


def _rope_heads(ops: Ops, q, t: int, heads: int, dh: int, pos, theta: float):
    """RoPE of q [t, heads*Dh] through its [heads, t, Dh] view, into a new [t, heads*Dh]."""
    rotated = ops.rope(ops.view(q, (heads, t, dh), (dh, heads * dh, 1)), pos, theta, BF16)
    out = ops.upload(np.zeros((t, heads * dh), np.uint16))
    ops.copy_into(ops.view(out, (heads, t, dh), (dh, heads * dh, 1)), rotated)
    return out


def _projections(ops: Ops, xs, w: GQAWeights, t: int, pos: np.ndarray):
    xn = ops.rmsnorm(xs, ops.upload(w.ln_w), w.eps, BF16)
    q, k, v = (ops.gemm(xn, _weight_t(ops, m), BF16) for m in (w.wq, w.wk, w.wv))
    p = ops.upload(pos.astype(np.int32))
    qr = _rope_heads(ops, q, t, w.heads, w.head_dim, p, w.theta)
    kr = _rope_heads(ops, k, t, w.kv_heads, w.head_dim, p, w.theta)
    return qr, kr, v


def _attend(ops: Ops, w: GQAWeights, qr, keys, vals, attn, rows: int, cols: int, q_off: int, qpos: int) -> None:
    """scores = Q K^T batched over [KVH, G] (K shared by a group: stride 0), causal softmax at
    qpos into bf16, P V into the [rows, NH*Dh] attention rows starting at q_off."""
    kvh, g, dh, nh = w.kv_heads, w.group, w.head_dim, w.heads
    kd = kvh * dh
    q4 = ops.view(qr, (kvh, g, rows, dh), (g * dh, dh, nh * dh, 1), q_off)
    kt4 = ops.view(keys, (kvh, g, dh, cols), (dh, 0, 1, kd))
    v4 = ops.view(vals, (kvh, g, cols, dh), (dh, 0, kd, 1))
    p = ops.softmax(ops.gemm(q4, kt4, FP32), BF16, w.scale, True, qpos)
    ops.copy_into(ops.view(attn, (kvh, g, rows, dh), (g * dh, dh, nh * dh, 1), q_off), ops.gemm(p, v4, BF16))


def _finish(ops: Ops, xs, attn, w: GQAWeights) -> np.ndarray:
    ao = ops.gemm(attn, _weight_t(ops, w.wo), FP32)
    return ops.download(ops.binary("add", xs, ao, BF16))


def gqa_decode(ops: Ops, x: np.ndarray, w: GQAWeights, caches: list[tuple[np.ndarray, np.ndarray]]
               ) -> dict[str, np.ndarray]:
    """One new token per sequence. ``caches[s]`` = (K, V) rows [L_s, KVH*Dh] (rotated keys);
    the token's position is L_s. Returns y and each cache's new row (kc{s}, vc{s}: [1, KVH*Dh])."""
    b, kd, qd = x.shape[0], w.kv_heads * w.head_dim, w.heads * w.head_dim
    lens = [int(k.shape[0]) for k, _ in caches]
    xs = ops.upload(x)
    qr, kr, v = _projections(ops, xs, w, b, np.array(lens))
    attn = ops.upload(np.zeros((b, qd), np.uint16))
    out: dict[str, np.ndarray] = {}
    for s, ((kc, vc), length) in enumerate(zip(caches, lens)):
        at = ops.upload(np.array([length], np.int32))
        dev = []
        for cache, rows in ((kc, kr), (vc, v)):
            full = ops.upload(np.concatenate([cache, np.zeros((1, kd), np.uint16)]))
            ops.scatter(full, ops.view(rows, (1, kd), (kd, 1), s * kd), at)
            dev.append(full)
        _attend(ops, w, qr, dev[0], dev[1], attn, 1, length + 1, s * qd, length)
        out[f"kc{s}"] = ops.download(dev[0])[length:length + 1]
        out[f"vc{s}"] = ops.download(dev[1])[length:length + 1]
    out["y"] = _finish(ops, xs, attn, w)
    return out


def gqa_prefill(ops: Ops, x: np.ndarray, w: GQAWeights) -> dict[str, np.ndarray]:
    """T prompt tokens from position 0, causal: y, the rotated keys kr and the values v."""
    t, qd = x.shape[0], w.heads * w.head_dim
    xs = ops.upload(x)
    qr, kr, v = _projections(ops, xs, w, t, np.arange(t))
    attn = ops.upload(np.zeros((t, qd), np.uint16))
    _attend(ops, w, qr, kr, v, attn, t, t, 0, 0)
    return {"y": _finish(ops, xs, attn, w), "kr": ops.download(kr), "v": ops.download(v)}
