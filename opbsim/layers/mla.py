"""Multi-head latent attention (DeepSeek-V2 / V3), as serving engines run it.

Layouts (this device's H heads; c = kv_lora_rank, dn / dr = the nope / RoPE parts of a query
head, dv = the value head):
- ``L.q`` [T, H (dn + dr)]: per head its dn nope columns, then its dr RoPE columns;
- ``L.kv_a`` [T, c + dr]: the latent, then the shared RoPE key; ``L.kv_cache`` [R, S, c + dr]
  holds those rows per request slot (S the longest context of the stage);
- ``L.w_kv_b`` [c, H (dn + dv)]: per head dn columns of W_UK, then dv columns of W_UV. It is the
  only copy: the prefill expansion reads it whole, the absorptions through strided views.

Values (each instruction rounds once to its destination):
- ``kv_a[:, :c] = bf16(rmsnorm(kv_a[:, :c]))``; RoPE (halves rotated; the model's frequency table and
  cos/sin factor, layers/rope_table.py) on each head's dr columns and on the shared key, at each row's
  position;
- prefill chunk (expanded form): ``kv = bf16(latent[:ctx] W_kv_b)``; scores
  ``s = q_nope k_nope^T`` then ``+ q_rope k_rope^T`` (fp32, summed in that order: one k-ordered sum
  over dn + dr); ``p = bf16(softmax(s * scale))`` causal, scale = fp32((dn + dr)^-0.5), times
  DeepSeek's yarn_get_mscale(factor, mscale_all_dim)^2 under YaRN (layers/rope_table.py); ``o = bf16(p V)``;
- decode (absorbed form): ``q_lat = bf16(q_nope W_UK^T)`` per head; scores
  ``s = q_lat latent^T`` then ``+ q_rope k_rope^T`` (fp32); ``p`` as above without the mask;
  ``o_lat = bf16(p latent)``; ``o = bf16(o_lat W_UV)``.
The two forms are the same attention in exact arithmetic and differ in rounding; the float64
golden layer (emulator/layer_golden.py) bounds both.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from opbsim.isa.program import AttentionPart
from opbsim.isa.types import DType
from opbsim.layers.attention import layer_prefix
from opbsim.layers.builder import Builder
from opbsim.layers.rope_table import mla_softmax_scale, rope_operands
from opbsim.layers.stage_rows import positions, requests
from opbsim.layers.view import View, at
from opbsim.workloads.attention_mla import MLAPart
from opbsim.workloads.ops import Op

__all__ = ["DEFINITIONS"]


class _Geometry:
    def __init__(self, b: Builder, op: Op):
        m, a = b.model, b.model.mla
        self.L = layer_prefix(b, op)
        self.H, self.c, self.dn, self.dr, self.dv = b.shard.heads, a.kv_lora_rank, a.qk_nope_head_dim, \
            a.qk_rope_head_dim, a.v_head_dim
        self.dq, self.dkv = self.dn + self.dr, self.dn + self.dv
        self.T = b.stage.tokens
        self.reqs = requests(b.stage)
        self.S = max(r.context for r in self.reqs)
        self.dtype = m.dtype
        self.q = b.buf(f"{self.L}.q", m.dtype, (self.T, self.H * self.dq))
        self.kv_a = b.buf(f"{self.L}.kv_a", m.dtype, (self.T, self.c + self.dr))
        self.cache = b.buf(f"{self.L}.kv_cache", m.dtype, (len(self.reqs), self.S, self.c + self.dr),
                           kv_layer=b.layer)
        self.w_kv_b = b.buf(f"{self.L}.w_kv_b", m.dtype, (self.c, self.H * self.dkv))
        self.attn = b.buf(f"{self.L}.attn", m.dtype, (self.T, self.H * self.dv))
        self.scale = mla_softmax_scale(m, self.dq)

    def q_part(self, row: int, rows: int, offset: int, width: int) -> View:
        """[H, rows, width] of the query heads from column ``offset`` of each head."""
        return at(self.q, row * self.H * self.dq + offset, (self.H, rows, width), (self.dq, self.H * self.dq, 1))

    def cached(self, slot: int, ctx: int, offset: int, width: int, *, transposed: bool) -> View:
        """[H, width, ctx] (``transposed``) or [H, ctx, width] of slot's cached rows from column
        ``offset`` (0: the latent, c: the RoPE key), the same for every head (stride 0)."""
        row = self.c + self.dr
        base = slot * self.S * row + offset
        if transposed:
            return at(self.cache, base, (self.H, width, ctx), (0, 1, row))
        return at(self.cache, base, (self.H, ctx, width), (0, row, 1))

    def attn_rows(self, row: int, rows: int) -> View:
        """[H, rows, dv] of the attention output [T, H dv]."""
        return at(self.attn, row * self.H * self.dv, (self.H, rows, self.dv), (self.dv, self.H * self.dv, 1))


def kv_a_norm(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    latent = at(g.kv_a, 0, (g.T, g.c), (g.c + g.dr, 1))
    weight = b.buf(op.inputs[1].name, g.dtype, (g.c,))
    b.emit("rmsnorm", latent, latent, weight, float(np.float32(b.model.norm_eps)))


def rope(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    pos = b.const("positions", positions(b.stage))
    freq, mscale = rope_operands(b, g.dr)
    q_rope = g.q_part(0, g.T, g.dn, g.dr)
    b.emit("rope", q_rope, q_rope, pos, freq, mscale)
    k_rope = at(g.kv_a, g.c, (g.T, g.dr), (g.c + g.dr, 1))
    b.emit("rope", k_rope, k_rope, pos, freq, mscale)


def kv_store(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    slots = np.concatenate([slot * g.S + np.arange(r.past, r.context) for slot, r in enumerate(g.reqs)])
    idx = b.const(f"kv_slots.S{g.S}", slots.astype(np.int32))
    flat = at(g.cache, 0, (g.S * len(g.reqs), g.c + g.dr))
    b.emit("scatter", flat, g.kv_a, idx)


def _expanded(b: Builder, g: _Geometry, chunk: int) -> View:
    return b.buf(f"{g.L}.kv_full.{chunk}", g.dtype, (g.reqs[chunk].context, g.H * g.dkv))


def kv_expand(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    chunk = op.params["chunk"]
    r = g.reqs[chunk]
    latents = at(g.cache, chunk * g.S * (g.c + g.dr), (r.context, g.c), (g.c + g.dr, 1))
    b.gemm(_expanded(b, g, chunk), latents, g.w_kv_b)


def _attend(b: Builder, g: _Geometry, part: AttentionPart, row: int, slot: int, q_main: View, k_main_t: View,
            values: View, out: View) -> None:
    """For the ``part.new`` queries from token row ``row`` of request ``slot``: scores = q_main
    k_main^T + q_rope k_rope^T (fp32), p = bf16(softmax) (causal in prefill), out = bf16(p values)."""
    rows, ctx = part.new_tokens, part.past_tokens + part.new_tokens
    causal = int(part.phase == "prefill")
    scores = b.scratch("scores", DType.FP32, (g.H, rows, ctx))
    probs = b.scratch("probs", g.dtype, scores.shape)
    q_rope = g.q_part(row, rows, g.dn, g.dr)
    b.emit("gemm", scores, q_main, k_main_t, attention=replace(part, on_chip=("dst",)))
    b.emit("gemm_acc", scores, q_rope, g.cached(slot, ctx, g.c, g.dr, transposed=True),
           attention=replace(part, on_chip=("dst",)))
    b.emit("softmax", probs, scores, g.scale, causal, part.past_tokens,
           attention=replace(part, on_chip=("dst", "src")))
    b.emit("gemm", out, probs, values, attention=replace(part, on_chip=("a",)))


def prefill(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    chunk = op.params["chunk"]
    r = g.reqs[chunk]
    kv = _expanded(b, g, chunk)
    b.new_part()
    width = g.H * g.dkv
    k_nope_t = at(kv, 0, (g.H, g.dn, r.context), (g.dkv, 1, width))
    values = at(kv, g.dn, (g.H, r.context, g.dv), (g.dkv, width, 1))
    _attend(b, g, AttentionPart("prefill", r.new, r.past), r.row, chunk, g.q_part(r.row, r.new, 0, g.dn), k_nope_t,
            values, g.attn_rows(r.row, r.new))


def _decode_rows(b: Builder, g: _Geometry) -> tuple[int, int]:
    first = len(b.stage.prefill)
    return (g.reqs[first].row if first < len(g.reqs) else g.T), len(g.reqs) - first


def q_absorb(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    row, n = _decode_rows(b, g)
    w_uk_t = at(g.w_kv_b, 0, (g.H, g.dn, g.c), (g.dkv, 1, g.H * g.dkv))
    q_lat = b.buf(f"{g.L}.q_latent", g.dtype, (n, g.H, g.c))
    b.emit("gemm", at(q_lat, 0, (g.H, n, g.c), (g.c, g.H * g.c, 1)), g.q_part(row, n, 0, g.dn), w_uk_t)


def decode(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    row, n = _decode_rows(b, g)
    first = len(b.stage.prefill)
    q_lat = b.buf(f"{g.L}.q_latent", g.dtype, (n, g.H, g.c))
    o_lat = b.buf(f"{g.L}.attn_latent", g.dtype, (n, g.H, g.c))
    for j, r in enumerate(g.reqs[first:]):
        slot = first + j
        b.new_part()
        lat_t = g.cached(slot, r.context, 0, g.c, transposed=True)
        lat = g.cached(slot, r.context, 0, g.c, transposed=False)
        q = at(q_lat, j * g.H * g.c, (g.H, 1, g.c), (g.c, g.H * g.c, 1))
        out = at(o_lat, j * g.H * g.c, (g.H, 1, g.c), (g.c, g.H * g.c, 1))
        _attend(b, g, AttentionPart("decode", r.new, r.past), r.row, slot, q, lat_t, lat, out)


def v_absorb(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    row, n = _decode_rows(b, g)
    o_lat = b.buf(f"{g.L}.attn_latent", g.dtype, (n, g.H, g.c))
    w_uv = at(g.w_kv_b, g.dn, (g.H, g.c, g.dv), (g.dkv, g.H * g.dkv, 1))
    b.emit("gemm", g.attn_rows(row, n), at(o_lat, 0, (g.H, n, g.c), (g.c, g.H * g.c, 1)), w_uv)


DEFINITIONS = {
    MLAPart.KV_A_NORM: kv_a_norm, MLAPart.ROPE: rope, MLAPart.KV_STORE: kv_store, MLAPart.KV_EXPAND: kv_expand,
    MLAPart.PREFILL: prefill, MLAPart.Q_ABSORB: q_absorb, MLAPart.DECODE: decode, MLAPart.V_ABSORB: v_absorb,
}
"""The definition of each MLA part (``op.params["mla"]``)."""
