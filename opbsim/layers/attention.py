"""RoPE, the KV-cache append and attention (MHA / GQA / MQA).

Layouts. ``L.qkv`` is [T, (H + 2 KV) d]: the H query heads, then the KV key heads, then the KV
value heads. ``L.k_cache`` and ``L.v_cache`` are [R, S, KV, d]: one slot of S tokens per request
of the stage (prefill chunks first, then decoding requests), S the longest context in the stage.
A prefill chunk's attention is three instructions (scores, causal softmax, weighted values)
batched over KV heads and the g query heads of each group; decoding requests get the same three
each, all in one kernel. Scores are fp32, probabilities bf16, scale fp32(1 / sqrt(d)).

Windowed and chunked layers read only the keys some query of the request sees: from
``first_key`` on (a sliding window of W: the W most recent keys of the first query; a chunk of C:
the first key of the first query's chunk, a multiple of C), so a decode row reads exactly its
visible keys and needs no mask; a prefill chunk's rows see different ranges, which
``softmax_masked`` masks as transformers' masking_utils does (sliding_window_overlay: key j is
visible to query p iff p - W < j <= p; chunked_overlay: j // C == p // C and j <= p). With
attention sinks (gpt-oss) the scores get one more column holding the head's sink logit, which
``softmax_masked`` takes unscaled into the max and the denominator, and the weighted values skip
(transformers' GptOssAttention eager_attention_forward: concatenate, subtract the max, softmax,
drop the sink column). Every
instruction of an attention kernel carries its ``AttentionPart`` (phase, new and past tokens, the
scores and probabilities a fused kernel keeps on chip), by which a GPU's timing model costs it as
the attention kernel it stands for (hardware/gpu_efficiency.py).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from opbsim.errors import InputError
from opbsim.isa.program import AttentionPart
from opbsim.isa.types import DType
from opbsim.layers import fp8
from opbsim.layers.builder import Builder
from opbsim.layers.rope_table import rope_operands
from opbsim.layers.stage_rows import Request, positions, requests
from opbsim.layers.view import View, at
from opbsim.workloads.models import AttentionKind, QKNorm
from opbsim.workloads.ops import Op

__all__ = ["qk_norm", "rope", "q_scale", "kv_store", "attention", "query_temperature", "first_key"]


class _Geometry:
    """Views into one layer's qkv buffer and KV cache."""

    def __init__(self, b: Builder, layer: str):
        m, sh = b.model, b.shard
        self.H, self.KV, self.d = sh.heads, sh.kv_heads, m.head_dim
        self.g = self.H // self.KV
        self.W = (self.H + 2 * self.KV) * self.d
        self.T = b.stage.tokens
        self.reqs = requests(b.stage)
        self.S = max(r.context for r in self.reqs)
        self.qkv = b.buf(f"{layer}.qkv", m.dtype, (self.T, self.W))
        cache = (len(self.reqs), self.S, self.KV, self.d)
        self.k_cache = b.buf(f"{layer}.k_cache", m.kv_dtype, cache, kv_layer=b.layer)
        self.v_cache = b.buf(f"{layer}.v_cache", m.kv_dtype, cache, kv_layer=b.layer)
        self.k_scale, self.v_scale = (fp8.kv_scale(b, f"{layer}.{c}") for c in ("k_cache", "v_cache"))
        self.attn = b.buf(f"{layer}.attn", m.dtype, (self.T, self.H * self.d))

    def heads(self, first_head: int, count: int, row: int, rows: int) -> View:
        """[count, rows, d] of the qkv buffer from head ``first_head`` (for RoPE)."""
        return at(self.qkv, row * self.W + first_head * self.d, (count, rows, self.d), (self.d, self.W, 1))

    def token_rows(self, first_head: int) -> View:
        """[T, KV d]: the key (or value) heads of every token row."""
        return at(self.qkv, first_head * self.d, (self.T, self.KV * self.d), (self.W, 1))

    def queries(self, r) -> View:
        """[KV, g, new, d]: the request's queries, grouped by the KV head they share."""
        shape = (self.KV, self.g, r.new, self.d)
        return at(self.qkv, r.row * self.W, shape, (self.g * self.d, self.d, self.W, 1))

    def keys_t(self, slot: int, r, first: int = 0) -> View:
        """[KV, g, d, context - first]: the request's cached keys from position ``first``, transposed,
        broadcast over the group."""
        kd = self.KV * self.d
        return at(self.k_cache, (slot * self.S + first) * kd, (self.KV, self.g, self.d, r.context - first),
                  (self.d, 0, 1, kd))

    def values(self, slot: int, r, first: int = 0) -> View:
        """[KV, g, context - first, d]: the request's cached values from position ``first``, broadcast
        over the group."""
        kd = self.KV * self.d
        return at(self.v_cache, (slot * self.S + first) * kd, (self.KV, self.g, r.context - first, self.d),
                  (self.d, 0, kd, 1))

    def output(self, r) -> View:
        """[KV, g, new, d] of the attention output [T, H d]."""
        hd = self.H * self.d
        return at(self.attn, r.row * hd, (self.KV, self.g, r.new, self.d), (self.g * self.d, self.d, hd, 1))


def layer_prefix(b: Builder, op: Op) -> str:
    """The prefix of the layer's buffer names (``L3``), for an op of a decoder layer."""
    if b.layer is None:
        raise ValueError(f"{op.name}: a decoder-layer op outside the decoder layers")
    return f"L{b.layer}"


def qk_norm(b: Builder, op: Op) -> None:
    """RMSNorm of the query and key heads in place: per head with one d-wide weight shared by all
    heads (Qwen3, before RoPE), over the whole query and key widths (OLMoE), or per head without a
    weight (Llama 4's Llama4TextL2Norm, x * rsqrt(mean(x^2) + eps) after RoPE: the rmsnorm with a
    constant weight of ones, exact since (x * r) * 1 = x * r)."""
    geo = _Geometry(b, layer_prefix(b, op))
    eps = float(np.float32(b.model.norm_eps))
    per_head = b.model.qk_norm in (QKNorm.PER_HEAD, QKNorm.PER_HEAD_UNWEIGHTED)
    if b.model.qk_norm is QKNorm.PER_HEAD_UNWEIGHTED:
        ones = b.const(f"ones.bf16.{geo.d}", np.full(geo.d, 0x3F80, np.uint16), DType.BF16)
        weights = (ones, ones)
    else:
        weights = tuple(b.buf(w.name, b.model.dtype, w.shape) for w in op.inputs[2:4])
    if not per_head and b.tp > 1:
        raise InputError(f"{op.name}: a q/k norm over the whole width is not lowered under tensor parallelism "
                         "(its sum of squares spans the shards)")
    for (first, count), w in zip(((0, geo.H), (geo.H, geo.KV)), weights):
        if per_head:
            view = at(geo.qkv, first * geo.d, (geo.T, count, geo.d), (geo.W, geo.d, 1))
        else:
            view = at(geo.qkv, first * geo.d, (geo.T, count * geo.d), (geo.W, 1))
        b.emit("rmsnorm", view, view, w, eps)


def rope(b: Builder, op: Op) -> None:
    geo = _Geometry(b, layer_prefix(b, op))
    pos = b.const("positions", positions(b.stage))
    freq, mscale = rope_operands(b, geo.d)
    for first, count in ((0, geo.H), (geo.H, geo.KV)):
        view = geo.heads(first, count, 0, geo.T)
        b.emit("rope", view, view, pos, freq, mscale)


def query_temperature(pos: np.ndarray, floor_scale: int, attn_scale: float) -> np.ndarray:
    """Llama 4's query temperature at each position (fp32), transformers' Llama4TextAttention
    ``log1p(floor((pos + 1) / floor_scale)) * attn_scale + 1`` in these steps:

      f = (pos + 1) // floor_scale           (integer; transformers' fp32 division and floor give the
                                              same for positions below 2^24 and a power-of-two floor_scale)
      l = fp32(log1p(f))                     (float64 log1p rounded once to fp32)
      t = (l * fp32(attn_scale)) + 1         (fp32 multiply, then fp32 add)
    """
    f = (np.asarray(pos, np.int64) + 1) // int(floor_scale)
    lg = np.log1p(f.astype(np.float64)).astype(np.float32)
    return ((lg * np.float32(attn_scale)) + np.float32(1.0)).astype(np.float32)


def q_scale(b: Builder, op: Op) -> None:
    """The query temperature of a layer without RoPE: q = bf16(fp32(q) * t[pos]), ``t`` the table of
    ``query_temperature`` (positions are fixed when the stage is compiled), as transformers'
    ``(query_states * attn_scales).to(query_states.dtype)``."""
    geo = _Geometry(b, layer_prefix(b, op))
    fs, scale = int(op.params["floor_scale"]), float(op.params["attn_scale"])
    table = b.const(f"q_temperature.{fs}.{np.float32(scale).view(np.uint32)}",
                    query_temperature(positions(b.stage), fs, scale), DType.FP32)
    q = at(geo.qkv, 0, (geo.T, geo.H * geo.d), (geo.W, 1))
    b.emit("mul", q, q, at(table, 0, q.shape, (1, 0)))


def kv_store(b: Builder, op: Op) -> None:
    geo = _Geometry(b, layer_prefix(b, op))
    slots = np.concatenate([slot * geo.S + np.arange(r.past, r.context) for slot, r in enumerate(geo.reqs)])
    idx = b.const(f"kv_slots.S{geo.S}", slots.astype(np.int32))
    rows = geo.S * len(geo.reqs)
    for cache, scale, first in ((geo.k_cache, geo.k_scale, geo.H), (geo.v_cache, geo.v_scale, geo.H + geo.KV)):
        flat = View(cache.buffer, cache.space, cache.base_B, cache.dtype, (rows, geo.KV * geo.d))
        b.emit("scatter", flat, fp8.kv_rows(b, geo.token_rows(first), scale, f"{cache.buffer}.codes"), idx)


def first_key(kind: AttentionKind, span: int, r: Request) -> int:
    """The first cached position any query of ``r`` sees: a sliding window of ``span`` keys starts
    span - 1 before the first query, a chunk at the first query's chunk boundary."""
    if kind is AttentionKind.SLIDING:
        return max(0, r.past - span + 1)
    if kind is AttentionKind.CHUNKED:
        return r.past // span * span
    return 0


def attention(b: Builder, op: Op) -> None:
    geo = _Geometry(b, layer_prefix(b, op))
    m = b.model
    scale = float(np.float32(1.0 / math.sqrt(geo.d)))
    kind = m.layer_attention(b.layer)
    span = {AttentionKind.SLIDING: m.sliding_window, AttentionKind.CHUNKED: m.attention_chunk_size}.get(kind, 0)
    sink = int(bool(m.attention_sinks))
    phase = op.params["phase"]
    if phase == "prefill":
        chosen = [(op.params["chunk"], geo.reqs[op.params["chunk"]])]
    else:
        first = len(b.stage.prefill)
        chosen = list(enumerate(geo.reqs[first:], start=first))
    sinks = b.buf(f"L{b.layer}.sinks", m.dtype, (geo.H,)) if sink else None
    for slot, r in chosen:
        b.new_part()  # requests run one after another on the unit: reuse the scratch
        k0 = first_key(kind, span, r)
        n = r.context - k0  # keys read
        cols = n + sink
        masks = phase == "prefill" and span > 0
        part = AttentionPart(phase, r.new, r.past - k0, span=span if masks else 0,
                             chunked=masks and kind is AttentionKind.CHUNKED)
        scores = b.scratch("scores", DType.FP32, (geo.KV, geo.g, r.new, cols))
        probs = b.scratch("probs", m.dtype, scores.shape)
        strides = (geo.g * r.new * cols, r.new * cols, cols, 1)
        fp8.cache_product(b, at(scores, 0, (geo.KV, geo.g, r.new, n), strides), geo.queries(r),
                          geo.keys_t(slot, r, k0), geo.k_scale, attention=replace(part, on_chip=("dst",)))
        if sinks is not None:  # head h = kv * g + j: its logit in the last column of each of its rows
            b.emit("cvt", at(scores, n, (geo.KV, geo.g, r.new, 1), strides),
                   at(sinks, 0, (geo.KV, geo.g, r.new, 1), (geo.g, 1, 0, 0)), attention=replace(part, on_chip=("dst",)))
        on_chip = replace(part, on_chip=("dst", "src"))
        if phase == "prefill" and not span and not sink:
            b.emit("softmax", probs, scores, scale, 1, r.past, attention=on_chip)
        elif phase == "prefill":
            b.emit("softmax_masked", probs, scores, scale, r.past - k0, span, int(span > 0 and kind is
                   AttentionKind.CHUNKED), sink, attention=on_chip)
        elif sink:  # one query seeing every key read: no mask to apply
            b.emit("softmax_masked", probs, scores, scale, n - 1, 0, 0, 1, attention=on_chip)
        else:
            b.emit("softmax", probs, scores, scale, 0, r.past - k0, attention=on_chip)
        fp8.cache_product(b, geo.output(r), at(probs, 0, (geo.KV, geo.g, r.new, n), strides),
                          geo.values(slot, r, k0), geo.v_scale, attention=replace(part, on_chip=("a",)))
