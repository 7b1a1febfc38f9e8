"""The attention sublayer of one decoder layer (MHA, GQA, MQA): QKV projection, q/k norm, RoPE,
KV-cache store, one attention op per prefill chunk and one for all decode tokens, O projection.

The layer's ``AttentionKind`` decides which keys each query sees, so what the attention ops read and
compute: a sliding window the ``sliding_window`` most recent tokens, a chunked layer the tokens of
its own ``attention_chunk_size``-aligned chunk. Layers without RoPE skip the rope op (and, with
Llama 4's temperature tuning, scale their queries by position instead).

Under tensor parallelism each device holds ``shard.heads`` query heads and ``shard.kv_heads`` KV
heads (KV heads are replicated when there are fewer than devices).
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.workloads import primitives as P
from opbsim.workloads.models import AttentionKind, ModelConfig, QKNorm
from opbsim.workloads.ops import Op, OpClass, OpKind, Role, TensorSpec
from opbsim.workloads.stage import Stage
from opbsim.workloads.weight_format import fp8_block

__all__ = ["Shard", "make_shard", "attended_pairs", "chunked_pairs", "attention_ops", "kv_scales"]


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


def chunked_pairs(past: int, new: int, chunk: int) -> int:
    """(query, key) pairs of ``new`` causal queries after ``past`` cached tokens when each query sees
    only the tokens of its own ``chunk``-aligned chunk: the query at 0-based position p sees
    p mod chunk + 1 keys."""
    return _chunk_prefix(past + new, chunk) - _chunk_prefix(past, chunk)


def _chunk_prefix(n: int, chunk: int) -> int:
    """Sum over positions 0..n-1 of (p mod chunk + 1)."""
    full, rest = divmod(n, chunk)
    return full * chunk * (chunk + 1) // 2 + rest * (rest + 1) // 2


def _keys_read(kind: AttentionKind, model: ModelConfig, past: int, new: int) -> int:
    """Cached keys the queries at positions past..past+new-1 read."""
    if kind is AttentionKind.SLIDING:
        return min(past + new, model.sliding_window + new - 1)
    if kind is AttentionKind.CHUNKED:
        return past + new - past // model.attention_chunk_size * model.attention_chunk_size
    return past + new


def _pairs(kind: AttentionKind, model: ModelConfig, past: int, new: int) -> int:
    if kind is AttentionKind.CHUNKED:
        return chunked_pairs(past, new, model.attention_chunk_size)
    return attended_pairs(past, new, model.sliding_window if kind is AttentionKind.SLIDING else 0)


def attention_ops(model: ModelConfig, shard: Shard, stage: Stage, prefix: str, x_norm: TensorSpec, *,
                  layer: int = 0) -> list[Op]:
    """Ops from the normalised input ``x_norm`` to ``<prefix>.attn_out`` (this device's partial sum)
    for decoder layer ``layer``."""
    T, h, d, dt = stage.tokens, model.hidden_size, model.head_dim, model.dtype
    H, KV = shard.heads, shard.kv_heads
    kind, rope = model.layer_attention(layer), model.layer_has_rope(layer)
    w = model.sliding_window if kind is AttentionKind.SLIDING else 0
    width = (H + 2 * KV) * d
    bias = P.weight(f"{prefix}.b_qkv", (width,), dt) if model.qkv_bias else None
    block, kv_dt = fp8_block(model), model.kv_dtype
    w_qkv, s_qkv = P.projection(f"{prefix}.w_qkv", (h, width), dt, block)
    ops = [P.gemm(f"{prefix}.qkv_proj", x_norm, w_qkv, f"{prefix}.qkv", op_class=OpClass.FC, bias=bias, scale=s_qkv)]
    q = P.act(f"{prefix}.qkv", (T, H, d), dt)
    k = P.act(f"{prefix}.qkv", (T, KV, d), dt)
    # Llama 4 normalises after RoPE, and only on its RoPE layers (Llama4TextAttention); Qwen3 and
    # OLMoE before RoPE
    after_rope = model.qk_norm is QKNorm.PER_HEAD_UNWEIGHTED
    if model.qk_norm is not QKNorm.NONE and not after_rope:
        ops.append(_qk_norm(model, shard, prefix, q, k, T))
    if rope:
        ops.append(P.elementwise(f"{prefix}.rope", OpKind.ROPE, (q, k), (q, k), flops=P.ROPE_FLOPS * T * (H + KV) * d,
                                 op_class=OpClass.ATTENTION))
        if after_rope:
            ops.append(_qk_norm(model, shard, prefix, q, k, T))
    elif model.query_temperature is not None:  # log, floor, multiply-add per token; one multiply per element
        ops.append(P.elementwise(f"{prefix}.q_scale", OpKind.Q_SCALE, (q,), (q,), flops=4 * T + T * H * d,
                                 op_class=OpClass.ATTENTION,
                                 params={"floor_scale": model.query_temperature.floor_scale_tokens,
                                         "attn_scale": model.query_temperature.attn_scale}))
    cache = f"{prefix}.kv_cache"
    scales = kv_scales(model, prefix, ("k_cache", "v_cache"))
    v = P.act(f"{prefix}.qkv", (T, KV, d), dt)
    ops.append(P.elementwise(f"{prefix}.kv_store", OpKind.KV_STORE, (k, v, *scales),
                             (TensorSpec(cache, (2, T, KV, d), kv_dt, Role.KV_CACHE),), flops=0,
                             op_class=OpClass.ATTENTION))
    sinks = P.weight(f"{prefix}.sinks", (H,), dt) if model.attention_sinks else None
    common = {"heads": H, "kv_heads": KV, "head_dim": d, "window": w}
    if kind is AttentionKind.CHUNKED:
        common["attention_chunk"] = model.attention_chunk_size
    if model.attention_sinks:
        common["sinks"] = True
    for i, c in enumerate(stage.prefill):
        keys = _keys_read(kind, model, c.past_tokens, c.new_tokens)
        ops.append(P.attention(
            f"{prefix}.attn_prefill.{i}", (P.act(f"{prefix}.qkv", (c.new_tokens, H, d), dt),),
            (TensorSpec(cache, (2, keys, KV, d), kv_dt, Role.KV_CACHE), *scales), f"{prefix}.attn",
            pairs=_pairs(kind, model, c.past_tokens, c.new_tokens), qk_dim=d, v_dim=d, heads=H, sinks=sinks,
            params={**common, "phase": "prefill", "chunk": i, "past_tokens": c.past_tokens,
                    "new_tokens": c.new_tokens}))
    if stage.decode_ctx_tokens:
        ctx = stage.decode_ctx_tokens
        keys = sum(_keys_read(kind, model, n - 1, 1) for n in ctx)
        ops.append(P.attention(
            f"{prefix}.attn_decode", (P.act(f"{prefix}.qkv", (len(ctx), H, d), dt),),
            (TensorSpec(cache, (2, keys, KV, d), kv_dt, Role.KV_CACHE), *scales), f"{prefix}.attn",
            pairs=keys, qk_dim=d, v_dim=d, heads=H, sinks=sinks,
            params={**common, "phase": "decode", "ctx_tokens": ctx}))
    attn = P.act(f"{prefix}.attn", (T, H * d), dt)
    o_bias = P.weight(f"{prefix}.b_o", (h,), dt) if model.o_bias else None
    w_o, s_o = P.projection(f"{prefix}.w_o", (H * d, h), dt, block)
    ops.append(P.gemm(f"{prefix}.o_proj", attn, w_o, f"{prefix}.attn_out", op_class=OpClass.FC, bias=o_bias,
                      scale=s_o, params={"row_parallel": True} if o_bias else None))
    return ops


def kv_scales(model: ModelConfig, prefix: str, caches: tuple[str, ...]) -> tuple[TensorSpec, ...]:
    """The per-tensor fp32 scale ``<prefix>.<cache>.scale`` of each of a layer's fp8 KV-cache tensors
    (a stored value is code * scale; vLLM's ``k_scale`` / ``v_scale``), none for a bf16 cache."""
    if model.kv_dtype is not DType.FP8_E4M3:
        return ()
    return tuple(P.weight(f"{prefix}.{c}.scale", (1,), DType.FP32) for c in caches)


def _qk_norm(model: ModelConfig, shard: Shard, prefix: str, q: TensorSpec, k: TensorSpec, T: int) -> Op:
    H, KV, d, dt = shard.heads, shard.kv_heads, model.head_dim, model.dtype
    ws: tuple[TensorSpec, ...] = ()
    if model.qk_norm is not QKNorm.PER_HEAD_UNWEIGHTED:
        norm_w = (d, d) if model.qk_norm is QKNorm.PER_HEAD else (model.q_dim // shard.tp, KV * d)
        ws = (P.weight(f"{prefix}.w_q_norm", (norm_w[0],), dt), P.weight(f"{prefix}.w_k_norm", (norm_w[1],), dt))
    per_elem = P.RMSNORM_FLOPS - (model.qk_norm is QKNorm.PER_HEAD_UNWEIGHTED)  # no weight multiply
    return P.elementwise(f"{prefix}.qk_norm", OpKind.QK_NORM, (q, k, *ws), (q, k),
                         flops=per_elem * T * (H + KV) * d, op_class=OpClass.ATTENTION,
                         params={"norm": model.qk_norm.value})
