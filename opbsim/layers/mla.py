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

from opbsim.errors import InputError
from opbsim.isa.program import AttentionPart
from opbsim.isa.types import DType
from opbsim.layers import fp8
from opbsim.layers.attention import layer_prefix
from opbsim.layers.builder import Builder
from opbsim.layers.rope_table import mla_softmax_scale, rope_operands
from opbsim.layers.stage_rows import positions, requests
from opbsim.layers.view import View, at
from opbsim.workloads.attention_mla import MLAPart
from opbsim.workloads.ops import Op
from opbsim.workloads.weight_format import fp8_block

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
        self.cache = b.buf(f"{self.L}.kv_cache", m.kv_dtype, (len(self.reqs), self.S, self.c + self.dr),
                           kv_layer=b.layer)
        self.kv_scale = fp8.kv_scale(b, f"{self.L}.kv_cache")
        # the latent query of a head: [c], or over an fp8 cache [c + dr] with its RoPE part after it, so
        # that decode scores are one product over the cached row (FlashMLA's 576-wide dot product)
        self.qw = self.c + (self.dr if self.kv_scale is not None else 0)
        self.block = fp8_block(m)  # (bk, bn) where w_kv_b is fp8, else None
        if self.block is not None and (self.dn % self.block[1] or self.dv % self.block[1]):
            raise InputError(f"MLA with fp8 w_kv_b needs qk_nope_head_dim ({self.dn}) and v_head_dim ({self.dv}) "
                             f"to be multiples of the weight block's {self.block[1]} columns (the absorbed "
                             f"products read each head's part on its own blocks)")
        w_dtype = m.dtype if self.block is None else DType.FP8_E4M3
        self.w_kv_b = b.buf(f"{self.L}.w_kv_b", w_dtype, (self.c, self.H * self.dkv))
        self.w_scale = None if self.block is None else b.buf(
            f"{self.L}.w_kv_b.scale", DType.FP32, (-(-self.c // self.block[0]), -(-self.H * self.dkv // self.block[1])))
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

    def head_scales(self, col: int, shape: tuple[int, int, int], transposed: bool) -> View:
        """The block scales of a per-head view of w_kv_b from column ``col`` of each head: [H, KB, NB]
        for W_UK^T (``transposed``: its k runs along w_kv_b's columns) or W_UV. Each head's part must
        start on a block: the scale of an instruction block is then one weight block's."""
        bn = self.block[1]
        nb_row = self.w_scale.shape[1]
        strides = (self.dkv // bn, 1, nb_row) if transposed else (self.dkv // bn, nb_row, 1)
        return at(self.w_scale, col // bn, shape, strides)

    def absorb(self, b: Builder, out: View, x: View, w: View, col: int, transposed: bool) -> None:
        """out = x w for a per-head view ``w`` of w_kv_b (from column ``col`` of each head): bf16,
        or for an fp8 w_kv_b the weight-only block-scaled GEMM (fp8.weight_only)."""
        if self.block is None:
            b.emit("gemm", out, x, w)
            return
        bk, bn = self.block
        k, n = w.shape[-2:]
        kb, nb = (bn, bk) if transposed else (bk, bn)  # the instruction's (block_k, block_n)
        sb = self.head_scales(col, (self.H, -(-k // kb), -(-n // nb)), transposed)
        fp8.weight_only(b, out, x, w, sb, kb, nb)

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
    b.emit("scatter", flat, fp8.kv_rows(b, g.kv_a, g.kv_scale, "kv_codes"), idx)


def _expanded(b: Builder, g: _Geometry, chunk: int) -> View:
    return b.buf(f"{g.L}.kv_full.{chunk}", g.dtype, (g.reqs[chunk].context, g.H * g.dkv))


def kv_expand(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    chunk = op.params["chunk"]
    r = g.reqs[chunk]
    latents = at(g.cache, chunk * g.S * (g.c + g.dr), (r.context, g.c), (g.c + g.dr, 1))
    fp8.product(b, _expanded(b, g, chunk), latents, g.w_kv_b, g.w_scale, x_scale=g.kv_scale)


def _attend(b: Builder, g: _Geometry, part: AttentionPart, row: int, slot: int, q_main: View, k_main_t: View,
            values: View, out: View) -> None:
    """For the ``part.new`` queries from token row ``row`` of request ``slot``: scores = q_main
    k_main^T + q_rope k_rope^T (fp32), p = bf16(softmax) (causal in prefill), out = bf16(p values).
    With an fp8 cache the products that read it are fp8.cache_product's: in decode one product over
    the whole cached row (``q_main`` and ``k_main_t`` span the RoPE part too), in prefill the RoPE
    scores added to the main ones (fp32). ``k_main_t`` and ``values`` are cache views in decode, the
    bf16 expansion in prefill."""
    rows, ctx = part.new_tokens, part.past_tokens + part.new_tokens
    causal = int(part.phase == "prefill")
    main_scale = g.kv_scale if part.phase == "decode" else None
    scores = b.scratch("scores", DType.FP32, (g.H, rows, ctx))
    probs = b.scratch("probs", g.dtype, scores.shape)
    q_rope = g.q_part(row, rows, g.dn, g.dr)
    keep = replace(part, on_chip=("dst",))
    fp8.cache_product(b, scores, q_main, k_main_t, main_scale, attention=keep)
    k_rope_t = g.cached(slot, ctx, g.c, g.dr, transposed=True)
    if g.kv_scale is None:
        b.emit("gemm_acc", scores, q_rope, k_rope_t, attention=keep)
    elif part.phase == "prefill":  # decode's main product already spanned the RoPE part (g.qw)
        rope_scores = b.scratch("rope_scores", DType.FP32, scores.shape)
        fp8.cache_product(b, rope_scores, q_rope, k_rope_t, g.kv_scale, attention=keep)
        b.emit("add", scores, scores, rope_scores, attention=replace(part, on_chip=("dst", "a", "b")))
    b.emit("softmax", probs, scores, g.scale, causal, part.past_tokens,
           attention=replace(part, on_chip=("dst", "src")))
    fp8.cache_product(b, out, probs, values, main_scale, attention=replace(part, on_chip=("a",)))


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
    """q_lat = q_nope W_UK^T per head; over an fp8 cache each head's RoPE query is copied after it."""
    g = _Geometry(b, op)
    row, n = _decode_rows(b, g)
    w_uk_t = at(g.w_kv_b, 0, (g.H, g.dn, g.c), (g.dkv, 1, g.H * g.dkv))
    q_lat = b.buf(f"{g.L}.q_latent", g.dtype, (n, g.H, g.qw))
    g.absorb(b, at(q_lat, 0, (g.H, n, g.c), (g.qw, g.H * g.qw, 1)), g.q_part(row, n, 0, g.dn), w_uk_t, 0, True)
    if g.qw > g.c:
        b.emit("cvt", at(q_lat, g.c, (g.H, n, g.dr), (g.qw, g.H * g.qw, 1)), g.q_part(row, n, g.dn, g.dr))


def decode(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    row, n = _decode_rows(b, g)
    first = len(b.stage.prefill)
    q_lat = b.buf(f"{g.L}.q_latent", g.dtype, (n, g.H, g.qw))
    o_lat = b.buf(f"{g.L}.attn_latent", g.dtype, (n, g.H, g.c))
    for j, r in enumerate(g.reqs[first:]):
        slot = first + j
        b.new_part()
        lat_t = g.cached(slot, r.context, 0, g.qw, transposed=True)
        lat = g.cached(slot, r.context, 0, g.c, transposed=False)
        q = at(q_lat, j * g.H * g.qw, (g.H, 1, g.qw), (g.qw, g.H * g.qw, 1))
        out = at(o_lat, j * g.H * g.c, (g.H, 1, g.c), (g.c, g.H * g.c, 1))
        _attend(b, g, AttentionPart("decode", r.new, r.past), r.row, slot, q, lat_t, lat, out)


def v_absorb(b: Builder, op: Op) -> None:
    g = _Geometry(b, op)
    row, n = _decode_rows(b, g)
    o_lat = b.buf(f"{g.L}.attn_latent", g.dtype, (n, g.H, g.c))
    w_uv = at(g.w_kv_b, g.dn, (g.H, g.c, g.dv), (g.dkv, g.H * g.dkv, 1))
    g.absorb(b, g.attn_rows(row, n), at(o_lat, 0, (g.H, n, g.c), (g.c, g.H * g.c, 1)), w_uv, g.dn, False)


DEFINITIONS = {
    MLAPart.KV_A_NORM: kv_a_norm, MLAPart.ROPE: rope, MLAPart.KV_STORE: kv_store, MLAPart.KV_EXPAND: kv_expand,
    MLAPart.PREFILL: prefill, MLAPart.Q_ABSORB: q_absorb, MLAPart.DECODE: decode, MLAPart.V_ABSORB: v_absorb,
}
"""The definition of each MLA part (``op.params["mla"]``)."""
