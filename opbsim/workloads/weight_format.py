"""The stored format of a model's weights and KV cache: which matrices are fp8, and their bytes.

An fp8 weight (``ModelConfig.weight_dtype`` FP8_E4M3) is one e4m3 byte per element plus one fp32
scale per ``block`` of its [K, N] matrix, ``ceil(K / bk) * ceil(N / bk')`` scales: DeepSeek-V3's
checkpoint stores each ``weight`` with a ``weight_scale_inv`` of ``ceil(out / 128) x ceil(in / 128)``
fp32 values (DeepSeek-V3 inference code, ``model.py`` ``Linear`` and ``kernel.py`` ``weight_dequant``).
The scope decides which matrices are fp8: ``linear``, every projection of the decoder layers
(attention, MLA's down and up projections, dense, routed and shared experts' FFNs); ``experts``, the
routed experts' only. Never the embeddings, the LM head, the norms, the router or any bias.

Matrices are counted as the checkpoint stores them (q, k, v separate; gate, up, down separate), so
the scale count is the checkpoint's. An fp8 KV cache (``kv_dtype`` FP8_E4M3) is one byte per
element with one fp32 scale per cache tensor (per layer), which does not grow with the tokens.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.workloads.model_parts import ConfigError, WeightQuant

if TYPE_CHECKING:
    from opbsim.workloads.models import ModelConfig

__all__ = ["FP8_BLOCK", "KV_SCALE_B", "SCALE_B", "WEIGHT_DTYPES", "KV_DTYPES", "Matrix", "quantized_matrices",
           "fp8_weight_bytes", "expert_weight_bytes", "FORMAT_NAMES", "with_formats", "fp8_block", "resolve_formats",
           "check_layout_blocks"]

FP8_BLOCK = (128, 128)
"""DeepSeek-V3's weight block (``quantization_config.weight_block_size``), the default of an fp8 weight."""
SCALE_B = DType.FP32.itemsize_B
"""Bytes of one weight-block scale (fp32)."""
KV_SCALE_B = DType.FP32.itemsize_B
"""Bytes of the per-tensor scale of one layer's fp8 KV cache."""
WEIGHT_DTYPES = (DType.BF16, DType.FP8_E4M3)
KV_DTYPES = (DType.BF16, DType.FP8_E4M3)

Matrix = tuple[int, int, int, bool]
"""(count, K, N, routed expert): ``count`` matrices of K x N elements over the whole model."""


def _linear_matrices(m: ModelConfig) -> list[Matrix]:
    h, mats = m.hidden_size, []
    if m.mla is not None:
        a, H = m.mla, m.num_heads
        if a.q_lora_rank:
            mats += [(1, h, a.q_lora_rank, False), (1, a.q_lora_rank, H * a.qk_head_dim, False)]
        else:
            mats.append((1, h, H * a.qk_head_dim, False))
        mats += [(1, h, a.cache_dim, False), (1, a.kv_lora_rank, H * (a.qk_nope_head_dim + a.v_head_dim), False),
                 (1, H * a.v_head_dim, h, False)]
    else:
        kv = m.num_kv_heads * m.head_dim
        mats += [(1, h, m.q_dim, False), (2, h, kv, False), (1, m.q_dim, h, False)]
    mats = [(c * m.num_layers, k, n, e) for c, k, n, e in mats]
    inner = m.ffn_act.num_matrices - 1  # gate and up (gated) or up: [h, f]; down: [f, h]
    n_moe = m.num_moe_layers
    dense = m.num_layers - n_moe
    for count, f, routed in ((dense, m.dense_ffn, False), (n_moe * m.num_experts, m.expert_ffn, True),
                             (n_moe * m.num_shared_experts, m.shared_ffn, False)):
        if count and f:
            mats += [(count * inner, h, f, routed), (count, f, h, routed)]
    return mats


def quantized_matrices(m: ModelConfig) -> list[Matrix]:
    """The matrices stored fp8 (empty unless ``weight_dtype`` is FP8_E4M3)."""
    if m.weight_dtype is not DType.FP8_E4M3:
        return []
    mats = _linear_matrices(m)
    if m.weight_quant is not None and m.weight_quant.scope == "experts":
        mats = [x for x in mats if x[3]]
    return mats


def _block(m: ModelConfig) -> tuple[int, int]:
    block = m.weight_quant.block if m.weight_quant is not None else FP8_BLOCK
    return (block[0], block[-1])


def _scales(m: ModelConfig, k: int, n: int) -> int:
    bk, bn = _block(m)
    return math.ceil(k / bk) * math.ceil(n / bn)


def fp8_weight_bytes(m: ModelConfig, *, routed_only: bool = False) -> tuple[int, int]:
    """(elements, bytes) of the fp8 matrices (of the routed experts' only with ``routed_only``):
    one byte per element plus ``SCALE_B`` per block."""
    elems = nbytes = 0
    for count, k, n, routed in quantized_matrices(m):
        if routed_only and not routed:
            continue
        elems += count * k * n
        nbytes += count * (k * n + SCALE_B * _scales(m, k, n))
    return elems, nbytes


def expert_weight_bytes(m: ModelConfig) -> int:
    """Bytes of the routed experts' weights (matrices and biases) in the stored format."""
    elems, fp8_B = fp8_weight_bytes(m, routed_only=True)
    return (m.param_counts().experts - elems) * m.dtype.itemsize_B + fp8_B


def resolve_formats(m: ModelConfig) -> None:
    """Fill ``m``'s unset ``weight_dtype`` (fp8 where its ``weight_quant`` is fp8, else ``dtype``) and
    ``kv_dtype`` (``dtype``), check both, and give fp8 weights without a record DeepSeek-V3's blocks over
    every projection. Called by ``ModelConfig.__post_init__``; ConfigError (one line) otherwise."""
    fp8_quant = m.weight_quant is not None and m.weight_quant.kind == "fp8_e4m3"
    if m.weight_dtype is None:
        object.__setattr__(m, "weight_dtype", DType.FP8_E4M3 if fp8_quant else m.dtype)
    if m.kv_dtype is None:
        object.__setattr__(m, "kv_dtype", m.dtype)
    for name in ("weight_dtype", "kv_dtype"):
        value = getattr(m, name)
        if value not in (m.dtype, DType.FP8_E4M3):
            raise ConfigError(name, f"{name} must be the model's dtype ({m.dtype.name.lower()}) or fp8_e4m3, "
                              f"got {value.name.lower() if isinstance(value, DType) else repr(value)}")
    if m.weight_dtype is DType.FP8_E4M3 and m.weight_quant is not None and not fp8_quant:
        raise ConfigError("weight_dtype", f"fp8 weights, but the checkpoint stores {m.weight_quant}")
    if m.weight_dtype is DType.FP8_E4M3 and m.weight_quant is None:
        object.__setattr__(m, "weight_quant", WeightQuant(kind="fp8_e4m3", block=FP8_BLOCK, scope="linear"))


FORMAT_NAMES = {"bf16": DType.BF16, "fp8": DType.FP8_E4M3}
"""The values of ``--dtype`` (weights) and ``--kv-dtype`` (KV cache)."""


def with_formats(m: ModelConfig, *, weights: str | None = None, kv: str | None = None) -> ModelConfig:
    """``m`` with its weights stored as ``weights`` and its KV cache as ``kv`` (names of
    ``FORMAT_NAMES``; None keeps the config's own). bf16 weights drop an mxfp4 checkpoint's record
    (its weights are then run as bf16); fp8 weights replace it with 128 x 128 fp8 blocks. InputError
    (one line) for an unknown name."""
    changes: dict = {}
    for flag, value, name in (("--dtype", weights, "weight_dtype"), ("--kv-dtype", kv, "kv_dtype")):
        if value is None:
            continue
        if value not in FORMAT_NAMES:
            raise InputError(f"{flag} {value[:40]!r}: expected one of {', '.join(FORMAT_NAMES)}")
        changes[name] = FORMAT_NAMES[value]
    quant = m.weight_quant
    if quant is not None and quant.kind != "fp8_e4m3" and "weight_dtype" in changes:
        changes["weight_quant"] = None  # the checkpoint's mxfp4 is replaced by the format asked for
    if changes.get("weight_dtype") is DType.FP8_E4M3 and m.dtype is not DType.BF16:
        raise InputError(f"--dtype fp8: {m.name} computes in {m.dtype.name.lower()}; fp8 weights come with bf16 "
                         "models")
    return dataclasses.replace(m, **changes) if changes else m


def check_layout_blocks(m: ModelConfig, tp: int, etp: int | None) -> None:
    """InputError (one line) where tensor parallelism would cut the scale blocks of ``m``'s fp8
    weights: each split dimension of a shard (the heads' columns at ``tp``; the dense and shared FFN
    widths at ``tp``, the routed experts' at ``etp``; None: not checked, as a graph whose experts a
    layout exchanges and runs at another width) must be whole blocks along both block axes, as
    it is one projection's N and the next one's K. vLLM and SGLang refuse the same layouts
    (``output_size ... is not divisible by weight quantization block_n``)."""
    heads, kv = m.num_heads // tp, max(m.num_kv_heads // tp, 1)
    if m.mla is not None:
        a = m.mla
        split = [("the query heads' columns", m.num_heads, heads, a.qk_head_dim),
                 ("w_kv_b's heads", m.num_heads, heads, a.qk_nope_head_dim + a.v_head_dim),
                 ("w_o's heads", m.num_heads, heads, a.v_head_dim)]
    else:
        split = [("the query heads' columns", m.num_heads, heads, m.head_dim),
                 ("the key and value heads' columns", m.num_kv_heads, kv, m.head_dim)]
    dims = [(what, n * per, k * per, False) for what, n, k, per in split]
    shared = m.num_shared_experts * m.shared_ffn
    for what, full, parts, routed in (("the dense FFN width", m.dense_ffn, tp, False),
                                      ("the shared experts' FFN width", shared, tp, False),
                                      ("an expert's FFN width", m.expert_ffn, etp, True)):
        if full and parts:
            dims.append((what, full, -(-full // parts), routed))
    for what, full, shard, routed in dims:
        block = fp8_block(m, routed=routed)
        if block is not None and shard != full and any(shard % b for b in block):
            raise InputError(f"{m.name} in fp8: a tensor-parallel shard of {what} holds {shard} of its {full}, not "
                             f"whole {block[0]} x {block[-1]} scale blocks; choose a tp (or etp) that keeps whole "
                             f"blocks, or --dtype bf16")


def fp8_block(m: ModelConfig, *, routed: bool = False) -> tuple[int, int] | None:
    """The (K, N) block of a projection's scales where the projection is stored fp8 (a routed
    expert's with ``routed``), else None."""
    if m.weight_dtype is not DType.FP8_E4M3 or m.weight_quant is None:
        return None
    if m.weight_quant.scope == "experts" and not routed:
        return None
    return _block(m)
