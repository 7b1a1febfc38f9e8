"""Lowering of RoPE, the KV-cache append and attention (MHA / GQA / MQA).

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
from dataclasses import dataclass, replace

import numpy as np

from opbsim.compiler.ir import View
from opbsim.compiler.lower import Lowerer
from opbsim.errors import InputError
from opbsim.isa.program import AttentionPart
from opbsim.isa.types import DType
from opbsim.workloads.ops import Op

__all__ = ["Request", "requests", "lower_rope", "lower_kv_store", "lower_attention"]


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a stage: its first token row, new tokens, and tokens already cached."""

    row: int
    new: int
    past: int

    @property
    def context(self) -> int:
        return self.past + self.new


def requests(stage) -> tuple[Request, ...]:
    out, row = [], 0
    for c in stage.prefill:
        out.append(Request(row, c.new_tokens, c.past_tokens))
        row += c.new_tokens
    out.extend(Request(row + j, 1, ctx - 1) for j, ctx in enumerate(stage.decode_ctx_tokens))
    return tuple(out)


def positions(stage) -> np.ndarray:
    """The position of every token row: its index in its request's sequence."""
    return np.concatenate([np.arange(r.past, r.context, dtype=np.int32) for r in requests(stage)])


class _Geometry:
    """Views into one layer's qkv buffer and KV cache."""

    def __init__(self, lw: Lowerer, layer: str):
        m, sh = lw.model, lw.shard
        if lw.model.sliding_window:
            raise InputError(f"{layer}: sliding-window attention is not lowered yet")
        self.H, self.KV, self.d = sh.heads, sh.kv_heads, m.head_dim
        self.g = self.H // self.KV
        self.W = (self.H + 2 * self.KV) * self.d
        self.T = lw.stage.tokens
        self.reqs = requests(lw.stage)
        self.S = max(r.context for r in self.reqs)
        self.qkv = lw.buf(f"{layer}.qkv", m.dtype, (self.T, self.W))
        cache = (len(self.reqs), self.S, self.KV, self.d)
        self.k_cache = lw.buf(f"{layer}.k_cache", m.dtype, cache, kv_layer=lw.layer)
        self.v_cache = lw.buf(f"{layer}.v_cache", m.dtype, cache, kv_layer=lw.layer)
        self.attn = lw.buf(f"{layer}.attn", m.dtype, (self.T, self.H * self.d))
        self.dtype = m.dtype

    def _at(self, view: View, offset_elems: int, shape: tuple[int, ...], strides: tuple[int, ...]) -> View:
        return View(view.buffer, view.space, view.base_B + offset_elems * 2, self.dtype, shape, strides)

    def heads(self, first_head: int, count: int, row: int, rows: int) -> View:
        """[count, rows, d] of the qkv buffer from head ``first_head`` (for RoPE)."""
        return self._at(self.qkv, row * self.W + first_head * self.d, (count, rows, self.d), (self.d, self.W, 1))

    def token_rows(self, first_head: int) -> View:
        """[T, KV d]: the key (or value) heads of every token row."""
        return self._at(self.qkv, first_head * self.d, (self.T, self.KV * self.d), (self.W, 1))

    def queries(self, r) -> View:
        """[KV, g, new, d]: the request's queries, grouped by the KV head they share."""
        shape = (self.KV, self.g, r.new, self.d)
        return self._at(self.qkv, r.row * self.W, shape, (self.g * self.d, self.d, self.W, 1))

    def keys_t(self, slot: int, r) -> View:
        """[KV, g, d, context]: the request's cached keys, transposed, broadcast over the group."""
        kd = self.KV * self.d
        return self._at(self.k_cache, slot * self.S * kd, (self.KV, self.g, self.d, r.context), (self.d, 0, 1, kd))

    def values(self, slot: int, r) -> View:
        """[KV, g, context, d]: the request's cached values, broadcast over the group."""
        kd = self.KV * self.d
        return self._at(self.v_cache, slot * self.S * kd, (self.KV, self.g, r.context, self.d), (self.d, 0, kd, 1))

    def output(self, r) -> View:
        """[KV, g, new, d] of the attention output [T, H d]."""
        hd = self.H * self.d
        return self._at(self.attn, r.row * hd, (self.KV, self.g, r.new, self.d), (self.g * self.d, self.d, hd, 1))


def _layer(lw: Lowerer, op: Op) -> str:
    """The prefix of the layer's buffer names (``L3``), for an op of a decoder layer."""
    if lw.layer is None:
        raise ValueError(f"{op.name}: an attention op outside the decoder layers")
    return f"L{lw.layer}"


def lower_rope(lw: Lowerer, op: Op) -> None:
    geo = _Geometry(lw, _layer(lw, op))
    pos = lw.const("positions", positions(lw.stage))
    theta = float(np.float32(lw.model.rope_theta))
    for first, count in ((0, geo.H), (geo.H, geo.KV)):
        view = geo.heads(first, count, 0, geo.T)
        lw.emit("rope", view, view, pos, theta)


def lower_kv_store(lw: Lowerer, op: Op) -> None:
    geo = _Geometry(lw, _layer(lw, op))
    slots = np.concatenate([slot * geo.S + np.arange(r.past, r.context) for slot, r in enumerate(geo.reqs)])
    idx = lw.const(f"kv_slots.S{geo.S}", slots.astype(np.int32))
    rows = geo.S * len(geo.reqs)
    for cache, first in ((geo.k_cache, geo.H), (geo.v_cache, geo.H + geo.KV)):
        flat = View(cache.buffer, cache.space, cache.base_B, cache.dtype, (rows, geo.KV * geo.d))
        lw.emit("scatter", flat, geo.token_rows(first), idx)


def lower_attention(lw: Lowerer, op: Op) -> None:
    geo = _Geometry(lw, _layer(lw, op))
    scale = float(np.float32(1.0 / math.sqrt(geo.d)))
    if op.params["phase"] == "prefill":
        chosen = [(op.params["chunk"], geo.reqs[op.params["chunk"]])]
        causal = 1
    else:
        first = len(lw.stage.prefill)
        chosen = list(enumerate(geo.reqs[first:], start=first))
        causal = 0
    phase = op.params["phase"]
    for slot, r in chosen:
        lw.layout.reset_scratch()  # requests run one after another on the unit: reuse the scratch
        part = AttentionPart(phase, r.new, r.past)
        scores = lw.scratch("scores", DType.FP32, (geo.KV, geo.g, r.new, r.context))
        probs = lw.scratch("probs", geo.dtype, scores.shape)
        lw.emit("gemm", scores, geo.queries(r), geo.keys_t(slot, r), attention=replace(part, on_chip=("dst",)))
        lw.emit("softmax", probs, scores, scale, causal, r.past, attention=replace(part, on_chip=("dst", "src")))
        lw.emit("gemm", geo.output(r), probs, geo.values(slot, r), attention=replace(part, on_chip=("a",)))
