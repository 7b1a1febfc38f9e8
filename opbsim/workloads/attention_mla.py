"""The attention sublayer with multi-head latent attention (DeepSeek-V2), as serving systems run it.

The cache holds, per token, the normalised latent c (kv_lora_rank) and the shared RoPE key
(qk_rope_head_dim). Prefill decompresses the chunk's context with W_kv_b into per-head K_nope and
V and runs ordinary attention with qk head dim nope + rope. Decode absorbs the weights instead: it
maps each head's q_nope into the latent space (q_nope W_UK), attends over the cached latents
directly (an MQA with one shared 576-wide key and 512-wide value at DeepSeek-V2 sizes) and maps
the result out with W_UV. The latent projection is replicated across tensor-parallel devices.
"""

from __future__ import annotations

import enum

from opbsim.isa.types import DType
from opbsim.workloads import primitives as P
from opbsim.workloads.attention import Shard, attended_pairs, kv_scales
from opbsim.workloads.models import ModelConfig, Norm
from opbsim.workloads.ops import Op, OpClass, OpKind, Role, TensorSpec
from opbsim.workloads.stage import Stage
from opbsim.workloads.weight_format import fp8_block

__all__ = ["mla_ops", "MLAPart"]


class MLAPart(enum.Enum):
    """``op.params["mla"]``: the part of MLA an op computes, where its layout is MLA's own (the
    latent and the RoPE key share one row of ``kv_a`` and of the cache; one weight ``w_kv_b``
    serves the prefill expansion and both absorptions)."""

    KV_A_NORM = "kv_a_norm"  # RMSNorm of the latent columns of kv_a, in place
    ROPE = "rope"  # the RoPE parts of the query heads and the shared key
    KV_STORE = "kv_store"  # kv_a rows (latent and RoPE key) into the cache
    KV_EXPAND = "kv_expand"  # a prefill chunk's context latents times w_kv_b: per-head K_nope and V
    PREFILL = "prefill"  # a prefill chunk's attention in the expanded form
    Q_ABSORB = "q_absorb"  # decode: q_nope times W_UK, into the latent space
    DECODE = "decode"  # decode attention over the cached latents (and RoPE keys)
    V_ABSORB = "v_absorb"  # decode: the latent result times W_UV


def mla_ops(model: ModelConfig, shard: Shard, stage: Stage, prefix: str, x_norm: TensorSpec) -> list[Op]:
    """Ops from the normalised input ``x_norm`` to ``<prefix>.attn_out`` (this device's partial sum)."""
    a, dt = model.mla, model.dtype
    assert a is not None
    T, h, H = stage.tokens, model.hidden_size, shard.heads
    dn, dr, dv, c = a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim, a.kv_lora_rank
    block, kv_dt = fp8_block(model), model.kv_dtype
    W = lambda name, shape: P.weight(f"{prefix}.{name}", shape, dt)  # noqa: E731
    A = lambda name, shape: P.act(f"{prefix}.{name}", shape, dt)  # noqa: E731

    def proj(name: str, shape: tuple[int, ...]) -> dict:
        """A projection's weight (``w``) and its ``scale`` where it is fp8, as P.gemm takes them."""
        w = P.weight(f"{prefix}.{name}", shape, dt if block is None else DType.FP8_E4M3)
        return {"w": w, "scale": None if block is None else P.block_scales(w, block)}

    ops: list[Op] = []
    if a.q_lora_rank:
        r = a.q_lora_rank
        ops.append(P.gemm(f"{prefix}.q_a_proj", x_norm, out=f"{prefix}.q_a", op_class=OpClass.FC,
                          **proj("w_q_a", (h, r))))
        ops.append(P.norm(f"{prefix}.q_a_norm", A("q_a", (T, r)), (W("w_q_a_norm", (r,)),), f"{prefix}.q_a",
                          kind=Norm.RMS, op_class=OpClass.ATTENTION))
        ops.append(P.gemm(f"{prefix}.q_b_proj", A("q_a", (T, r)), out=f"{prefix}.q", op_class=OpClass.FC,
                          **proj("w_q_b", (r, H * (dn + dr)))))
    else:
        ops.append(P.gemm(f"{prefix}.q_proj", x_norm, out=f"{prefix}.q", op_class=OpClass.FC,
                          **proj("w_q", (h, H * (dn + dr)))))
    ops.append(P.gemm(f"{prefix}.kv_a_proj", x_norm, out=f"{prefix}.kv_a", op_class=OpClass.FC,
                      **proj("w_kv_a", (h, c + dr))))
    ops.append(P.norm(f"{prefix}.kv_a_norm", A("kv_a", (T, c)), (W("w_kv_a_norm", (c,)),), f"{prefix}.kv_a",
                      kind=Norm.RMS, op_class=OpClass.ATTENTION, params={"mla": MLAPart.KV_A_NORM}))
    q_rope, k_rope = A("q", (T, H, dr)), A("kv_a", (T, dr))
    ops.append(P.elementwise(f"{prefix}.rope", OpKind.ROPE, (q_rope, k_rope), (q_rope, k_rope),
                             flops=P.ROPE_FLOPS * T * (H + 1) * dr, op_class=OpClass.ATTENTION,
                             params={"mla": MLAPart.ROPE}))
    cache = f"{prefix}.kv_cache"
    scales = kv_scales(model, prefix, ("kv_cache",))
    ops.append(P.elementwise(f"{prefix}.kv_store", OpKind.KV_STORE, (A("kv_a", (T, c + dr)), *scales),
                             (TensorSpec(cache, (T, c + dr), kv_dt, Role.KV_CACHE),), flops=0,
                             op_class=OpClass.ATTENTION, params={"mla": MLAPart.KV_STORE}))
    common = {"heads": H, "kv_lora_rank": c, "qk_nope_head_dim": dn, "qk_rope_head_dim": dr, "v_head_dim": dv}
    for i, ch in enumerate(stage.prefill):
        keys = ch.context_tokens
        latent = TensorSpec(cache, (keys, c), kv_dt, Role.KV_CACHE)
        ops.append(P.gemm(f"{prefix}.kv_b_proj.{i}", latent, out=f"{prefix}.kv_full.{i}", op_class=OpClass.ATTENTION,
                          params={"mla": MLAPart.KV_EXPAND, "chunk": i}, out_dtype=dt,
                          **proj("w_kv_b", (c, H * (dn + dv)))))
        ops.append(P.attention(
            f"{prefix}.attn_prefill.{i}", (A("q", (ch.new_tokens, H, dn + dr)),),
            (A(f"kv_full.{i}", (keys, H * (dn + dv))), TensorSpec(cache, (keys, dr), kv_dt, Role.KV_CACHE), *scales),
            f"{prefix}.attn", pairs=attended_pairs(ch.past_tokens, ch.new_tokens), qk_dim=dn + dr, v_dim=dv,
            heads=H, params={**common, "phase": "prefill", "chunk": i, "past_tokens": ch.past_tokens,
                             "new_tokens": ch.new_tokens, "mla": MLAPart.PREFILL}))
    if stage.decode_ctx_tokens:
        ctx = stage.decode_ctx_tokens
        B, keys = len(ctx), sum(ctx)
        ops.append(P.batched_gemm(f"{prefix}.q_absorb", A("q", (B, H, dn)), out=f"{prefix}.q_latent",
                                  op_class=OpClass.ATTENTION, params={"mla": MLAPart.Q_ABSORB},
                                  **proj("w_kv_b", (H, dn, c))))
        ops.append(P.attention(
            f"{prefix}.attn_decode", (A("q_latent", (B, H, c)), A("q", (B, H, dr))),
            (TensorSpec(cache, (keys, c + dr), kv_dt, Role.KV_CACHE), *scales), f"{prefix}.attn_latent",
            pairs=keys, qk_dim=c + dr, v_dim=c, heads=H,
            params={**common, "phase": "decode", "ctx_tokens": ctx, "mla": MLAPart.DECODE}))
        ops.append(P.batched_gemm(f"{prefix}.v_absorb", A("attn_latent", (B, H, c)), out=f"{prefix}.attn",
                                  op_class=OpClass.ATTENTION, params={"mla": MLAPart.V_ABSORB},
                                  **proj("w_kv_b", (H, c, dv))))
    ops.append(P.gemm(f"{prefix}.o_proj", A("attn", (T, H * dv)), out=f"{prefix}.attn_out", op_class=OpClass.FC,
                      **proj("w_o", (H * dv, h))))
    return ops
