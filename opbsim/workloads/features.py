"""What of a model the compiler cannot lower yet: the one list the compiler checks before its passes.

Each entry names a feature of ``ModelConfig`` whose ops (or numerics) have no lowering in
the layer definitions (opbsim/layers) today. The compiler refuses a model with any of them in one line, naming them all,
instead of failing on the first op it meets; the list shrinks as lowerings land.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.isa.types import DType
from opbsim.workloads.models import AttentionKind, ModelConfig, QKNorm

__all__ = ["UNLOWERED", "unlowered_features"]

UNLOWERED: tuple[tuple[str, Callable[[ModelConfig], bool]], ...] = (
    ("unweighted q/k norm", lambda m: m.qk_norm is QKNorm.PER_HEAD_UNWEIGHTED),
    ("sliding-window attention", lambda m: any(
        m.layer_attention(i) is AttentionKind.SLIDING for i in range(m.num_layers))),
    ("chunked attention", lambda m: any(m.layer_attention(i) is AttentionKind.CHUNKED for i in range(m.num_layers))),
    ("layers without RoPE", lambda m: bool(m.nope_layers)),
    ("query temperature", lambda m: m.query_temperature is not None),
    ("attention sinks", lambda m: m.attention_sinks),
    ("an output-projection bias", lambda m: m.o_bias),
    ("mxfp4 weights (--dtype bf16 runs them as bf16)", lambda m: m.weight_quant is not None
     and m.weight_quant.kind == "mxfp4"),
    ("fp8 weights (--dtype bf16 runs them as bf16)", lambda m: m.weight_dtype is DType.FP8_E4M3),
    ("an fp8 KV cache (--kv-dtype bf16)", lambda m: m.kv_dtype is DType.FP8_E4M3),
)
"""(feature, whether a model has it), in the order a refusal names them."""


def unlowered_features(model: ModelConfig) -> tuple[str, ...]:
    """The features of ``model`` the compiler cannot lower yet (empty when it can lower all of it)."""
    return tuple(name for name, has in UNLOWERED if has(model))
