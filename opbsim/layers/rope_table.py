"""The operands of a model's rope instructions: its frequency table and its cos/sin factor.

A model without ``rope_scaling`` rotates by theta^(-2i/D) (elementary.rope_inv_freq) with factor 1,
the rotation the rope instruction has always done. ``linear``, ``llama3`` and ``yarn`` scalings get
the tables of isa/rope_freq.py (transformers' modeling_rope_utils formulas, correctly rounded), and
YaRN its attention factor. theta is the model's ``rope_theta`` rounded to fp32 first (the base the
instruction has always been given). ``dynamic`` and ``longrope`` are not lowered (workloads/features.py
refuses them before any definition runs).
"""

from __future__ import annotations

import numpy as np

from opbsim.errors import InputError
from opbsim.isa import rope_freq
from opbsim.isa.elementary import rope_inv_freq
from opbsim.isa.types import DType
from opbsim.layers.builder import Builder
from opbsim.layers.view import View
from opbsim.workloads.models import ModelConfig

__all__ = ["rope_table", "rope_operands", "mla_softmax_scale"]


def rope_table(model: ModelConfig, dim: int) -> tuple[np.ndarray, float]:
    """(fp32 frequencies [dim / 2], fp32 cos/sin factor) of ``model``'s RoPE over ``dim`` columns."""
    theta = float(np.float32(model.rope_theta))
    s = model.rope_scaling
    if s is None:
        return rope_inv_freq(theta, dim), 1.0
    if s.kind == "linear":
        return rope_freq.linear_inv_freq(theta, dim, s.factor), 1.0
    if s.kind == "llama3":
        return rope_freq.llama3_inv_freq(theta, dim, s.factor, s.low_freq_factor, s.high_freq_factor,
                                         s.original_max_position_embeddings), 1.0
    if s.kind == "yarn":
        table = rope_freq.yarn_inv_freq(theta, dim, s.factor, s.beta_fast, s.beta_slow,
                                        s.original_max_position_embeddings, s.truncate)
        return table, rope_freq.yarn_attention_factor(s.factor, s.attention_factor, s.mscale, s.mscale_all_dim)
    raise InputError(f"{model.name}: RoPE scaling {s.kind!r} is not lowered")


def rope_operands(b: Builder, dim: int) -> tuple[View, float]:
    """The frequency table (a constant of the program) and the mscale immediate of a rope over
    ``dim`` columns."""
    table, mscale = rope_table(b.model, dim)
    return b.const(f"rope_freq.{dim}", table, DType.FP32), mscale


def mla_softmax_scale(model: ModelConfig, qk_head_dim: int) -> float:
    """The fp32 softmax scale of ``model``'s latent attention: qk_head_dim^-0.5, times
    yarn_get_mscale(factor, mscale_all_dim)^2 where its RoPE scaling has a non-zero ``mscale_all_dim``
    (isa/rope_freq.mla_softmax_scale: transformers' DeepseekV3Attention)."""
    s = model.rope_scaling
    if s is None:
        return rope_freq.mla_softmax_scale(qk_head_dim)
    return rope_freq.mla_softmax_scale(qk_head_dim, s.factor, s.mscale_all_dim)
