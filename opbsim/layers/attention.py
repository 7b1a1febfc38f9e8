"""RoPE, the KV-cache append and attention (MHA / GQA / MQA).

Layouts. ``L.qkv`` is [T, (H + 2 KV) d]: the H query heads, then the KV key heads, then the KV
value heads. ``L.k_cache`` and ``L.v_cache`` are [R, S, KV, d]: one slot of S tokens per request
of the stage (prefill chunks first, then decoding requests), S the longest context in the stage.
A prefill chunk's attention is three instructions (scores, causal softmax, weighted values)
batched over KV heads and the g query heads of each group; decoding requests get the same three
each, all in one kernel. Scores are fp32, probabilities bf16, scale fp32(1 / sqrt(d)). Every
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
from opbsim.layers.builder import Builder
from opbsim.layers.stage_rows import positions, requests
from opbsim.layers.view import View, at
from opbsim.workloads.models import QKNorm
from opbsim.workloads.ops import Op

__all__ = ["qk_norm", "rope", "kv_store", "attention"]


class _Geometry:
    """Views into one layer's qkv buffer and KV cache."""

    def __init__(self, b: Builder, layer: str):
        m, sh = b.model, b.shard
        if m.sliding_window:
            raise InputError(f"{layer}: sliding-window attention is not lowered yet")
        self.H, self.KV, self.d = sh.heads, sh.kv_heads, m.head_dim
        self.g = self.H // self.KV
        self.W = (self.H + 2 * self.KV) * self.d
        self.T = b.stage.tokens
        self.reqs = requests(b.stage)
        self.S = max(r.context for r in self.reqs)
        self.qkv = b.buf(f"{layer}.qkv", m.dtype, (self.T, self.W))
        cache = (len(self.reqs), self.S, self.KV, self.d)
        self.k_cache = b.buf(f"{layer}.k_cache", m.dtype, cache, kv_layer=b.layer)
        self.v_cache = b.buf(f"{layer}.v_cache", m.dtype, cache, kv_layer=b.layer)
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

    def keys_t(self, slot: int, r) -> View:
        """[KV, g, d, context]: the request's cached keys, transposed, broadcast over the group."""
        kd = self.KV * self.d
        return at(self.k_cache, slot * self.S * kd, (self.KV, self.g, self.d, r.context), (self.d, 0, 1, kd))

    def values(self, slot: int, r) -> View:
        """[KV, g, context, d]: the request's cached values, broadcast over the group."""
        kd = self.KV * self.d
        return at(self.v_cache, slot * self.S * kd, (self.KV, self.g, r.context, self.d), (self.d, 0, kd, 1))

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
    """RMSNorm of the query and key heads in place (before RoPE): per head with one d-wide weight
    shared by all heads (Qwen3), or over the whole query and key widths (OLMoE)."""
    geo = _Geometry(b, layer_prefix(b, op))
    eps = float(np.float32(b.model.norm_eps))
    q_w, k_w = op.inputs[2], op.inputs[3]
    per_head = b.model.qk_norm is QKNorm.PER_HEAD
    if not per_head and b.tp > 1:
        raise InputError(f"{op.name}: a q/k norm over the whole width is not lowered under tensor parallelism "
                         "(its sum of squares spans the shards)")
    for first, count, w in ((0, geo.H, q_w), (geo.H, geo.KV, k_w)):
        if per_head:
            view = at(geo.qkv, first * geo.d, (geo.T, count, geo.d), (geo.W, geo.d, 1))
        else:
            view = at(geo.qkv, first * geo.d, (geo.T, count * geo.d), (geo.W, 1))
        b.emit("rmsnorm", view, view, b.buf(w.name, b.model.dtype, w.shape), eps)


def rope(b: Builder, op: Op) -> None:
    geo = _Geometry(b, layer_prefix(b, op))
    pos = b.const("positions", positions(b.stage))
    theta = float(np.float32(b.model.rope_theta))
    for first, count in ((0, geo.H), (geo.H, geo.KV)):
        view = geo.heads(first, count, 0, geo.T)
        b.emit("rope", view, view, pos, theta)


def kv_store(b: Builder, op: Op) -> None:
    geo = _Geometry(b, layer_prefix(b, op))
    slots = np.concatenate([slot * geo.S + np.arange(r.past, r.context) for slot, r in enumerate(geo.reqs)])
    idx = b.const(f"kv_slots.S{geo.S}", slots.astype(np.int32))
    rows = geo.S * len(geo.reqs)
    for cache, first in ((geo.k_cache, geo.H), (geo.v_cache, geo.H + geo.KV)):
        flat = View(cache.buffer, cache.space, cache.base_B, cache.dtype, (rows, geo.KV * geo.d))
        b.emit("scatter", flat, geo.token_rows(first), idx)


def attention(b: Builder, op: Op) -> None:
    geo = _Geometry(b, layer_prefix(b, op))
    scale = float(np.float32(1.0 / math.sqrt(geo.d)))
    if op.params["phase"] == "prefill":
        chosen = [(op.params["chunk"], geo.reqs[op.params["chunk"]])]
        causal = 1
    else:
        first = len(b.stage.prefill)
        chosen = list(enumerate(geo.reqs[first:], start=first))
        causal = 0
    phase = op.params["phase"]
    dtype = b.model.dtype
    for slot, r in chosen:
        b.new_part()  # requests run one after another on the unit: reuse the scratch
        part = AttentionPart(phase, r.new, r.past)
        scores = b.scratch("scores", DType.FP32, (geo.KV, geo.g, r.new, r.context))
        probs = b.scratch("probs", dtype, scores.shape)
        b.emit("gemm", scores, geo.queries(r), geo.keys_t(slot, r), attention=replace(part, on_chip=("dst",)))
        b.emit("softmax", probs, scores, scale, causal, r.past, attention=replace(part, on_chip=("dst", "src")))
        b.emit("gemm", geo.output(r), probs, geo.values(slot, r), attention=replace(part, on_chip=("a",)))
