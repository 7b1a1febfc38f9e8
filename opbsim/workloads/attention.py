"""The attention sublayer of one decoder layer (MHA, GQA, MQA): QKV projection, q/k norm, RoPE,
KV-cache store, one attention op per prefill chunk and one for all decode tokens, O projection.

Under tensor parallelism each device holds ``shard.heads`` query heads and ``shard.kv_heads`` KV
heads (KV heads are replicated when there are fewer than devices).
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.workloads import primitives as P
from opbsim.workloads.models import ModelConfig, QKNorm
from opbsim.workloads.ops import Op, OpClass, OpKind, Role, TensorSpec
from opbsim.workloads.stage import Stage

__all__ = ["Shard", "make_shard", "attended_pairs", "attention_ops"]


@dataclass(frozen=True, slots=True)
class Shard:
    """What one of ``tp`` tensor-parallel devices holds: its query and KV heads; FFN widths are
    split by ``width`` (the largest shard when the split is uneven)."""

    tp: int
    heads: int
    kv_heads: int

    def width(self, n: int) -> int:
        return -(-n // self.tp)


def make_shard(model: ModelConfig, tp: int) -> Shard:
    if isinstance(tp, bool) or not isinstance(tp, int) or tp < 1:
        raise InputError(f"tp must be a positive integer, got {tp!r}")
    if model.num_heads % tp:
        raise InputError(f"tp ({tp}) must divide num_heads ({model.num_heads})")
    kv = model.num_kv_heads
    if kv % tp and tp % kv:
        raise InputError(f"tp ({tp}) and num_kv_heads ({kv}) must divide one another")
    return Shard(tp, model.num_heads // tp, max(kv // tp, 1))


def attended_pairs(past: int, new: int, window: int = 0) -> int:
    """(query, key) pairs of ``new`` causal queries after ``past`` cached tokens: query i (1-based
    position past + i) sees min(past + i, window) keys (all of them when ``window`` is 0)."""
    lo, hi = past + 1, past + new
    if window == 0 or hi <= window:
        return (lo + hi) * new // 2
    if lo > window:
        return window * new
    return (lo + window) * (window - lo + 1) // 2 + window * (hi - window)


def _keys(context: int, window: int) -> int:
    return min(context, window) if window else context


def attention_ops(model: ModelConfig, shard: Shard, stage: Stage, prefix: str, x_norm: TensorSpec) -> list[Op]:
    """Ops from the normalised input ``x_norm`` to ``<prefix>.attn_out`` (this device's partial sum)."""
    T, h, d, dt = stage.tokens, model.hidden_size, model.head_dim, model.dtype
    H, KV, w = shard.heads, shard.kv_heads, model.sliding_window
    width = (H + 2 * KV) * d
    bias = P.weight(f"{prefix}.b_qkv", (width,), dt) if model.qkv_bias else None
    ops = [P.gemm(f"{prefix}.qkv_proj", x_norm, P.weight(f"{prefix}.w_qkv", (h, width), dt), f"{prefix}.qkv",
                  op_class=OpClass.FC, bias=bias)]
    q = P.act(f"{prefix}.qkv", (T, H, d), dt)
    k = P.act(f"{prefix}.qkv", (T, KV, d), dt)
    if model.qk_norm is not QKNorm.NONE:
        norm_w = (d, d) if model.qk_norm is QKNorm.PER_HEAD else (model.q_dim // shard.tp, KV * d)
        ws = (P.weight(f"{prefix}.w_q_norm", (norm_w[0],), dt), P.weight(f"{prefix}.w_k_norm", (norm_w[1],), dt))
        ops.append(P.elementwise(f"{prefix}.qk_norm", OpKind.QK_NORM, (q, k, *ws), (q, k),
                                 flops=P.RMSNORM_FLOPS * T * (H + KV) * d, op_class=OpClass.ATTENTION,
                                 params={"norm": model.qk_norm.value}))
    if model.has_rope:
        ops.append(P.elementwise(f"{prefix}.rope", OpKind.ROPE, (q, k), (q, k), flops=P.ROPE_FLOPS * T * (H + KV) * d,
                                 op_class=OpClass.ATTENTION))
    cache = f"{prefix}.kv_cache"
    ops.append(P.elementwise(f"{prefix}.kv_store", OpKind.KV_STORE, (k, P.act(f"{prefix}.qkv", (T, KV, d), dt)),
                             (TensorSpec(cache, (2, T, KV, d), dt, Role.KV_CACHE),), flops=0,
                             op_class=OpClass.ATTENTION))
    common = {"heads": H, "kv_heads": KV, "head_dim": d, "window": w}
    for i, c in enumerate(stage.prefill):
        keys = min(c.context_tokens, w + c.new_tokens - 1) if w else c.context_tokens
        ops.append(P.attention(
            f"{prefix}.attn_prefill.{i}", (P.act(f"{prefix}.qkv", (c.new_tokens, H, d), dt),),
            (TensorSpec(cache, (2, keys, KV, d), dt, Role.KV_CACHE),), f"{prefix}.attn",
            pairs=attended_pairs(c.past_tokens, c.new_tokens, w), qk_dim=d, v_dim=d, heads=H,
            params={**common, "phase": "prefill", "chunk": i, "past_tokens": c.past_tokens,
                    "new_tokens": c.new_tokens}))
    if stage.decode_ctx_tokens:
        ctx = stage.decode_ctx_tokens
        keys = sum(_keys(n, w) for n in ctx)
        ops.append(P.attention(
            f"{prefix}.attn_decode", (P.act(f"{prefix}.qkv", (len(ctx), H, d), dt),),
            (TensorSpec(cache, (2, keys, KV, d), dt, Role.KV_CACHE),), f"{prefix}.attn",
            pairs=keys, qk_dim=d, v_dim=d, heads=H, params={**common, "phase": "decode", "ctx_tokens": ctx}))
    attn = P.act(f"{prefix}.attn", (T, H * d), dt)
    ops.append(P.gemm(f"{prefix}.o_proj", attn, P.weight(f"{prefix}.w_o", (H * d, h), dt), f"{prefix}.attn_out",
                      op_class=OpClass.FC))
    return ops
