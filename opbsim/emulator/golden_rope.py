"""RoPE frequencies and scale factors in float64, transcribed from transformers, independently of the
ISA's correctly rounded tables (isa/rope_freq.py): the float64 golden layers rotate by these.

- ``inv_freq``: transformers modeling_rope_utils.py ``_compute_default_rope_parameters``,
  ``_compute_linear_scaling_rope_parameters``, ``_compute_llama3_parameters`` and
  ``_compute_yarn_parameters`` (with ``find_correction_dim``, ``find_correction_range``,
  ``linear_ramp_factor``), step for step in float64;
- ``attention_factor``: the second value those functions return (YaRN's cos/sin factor, else 1);
- ``mla_scale_factor``: the factor DeepseekV3Attention (and DeepseekV2Attention) multiplies its
  softmax scale by, yarn_get_mscale(factor, mscale_all_dim)^2 (1 without ``mscale_all_dim``).
``scaling`` is a ``RopeScaling`` or None (unscaled).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["inv_freq", "attention_factor", "mla_scale_factor", "yarn_correction_range"]


def _get_mscale(scale: float, mscale: float = 1.0) -> float:
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def yarn_correction_range(theta: float, dim: int, beta_fast: float, beta_slow: float, original: int,
                          truncate: bool) -> tuple[float, float]:
    """transformers' ``find_correction_range`` in float64."""
    def correction_dim(num_rotations: float) -> float:
        return (dim * math.log(original / (num_rotations * 2 * math.pi))) / (2 * math.log(theta))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    return max(low, 0), min(high, dim - 1)


def inv_freq(theta: float, dim: int, scaling=None) -> np.ndarray:
    """The float64 frequencies [dim / 2] transformers computes for ``scaling``."""
    inv = 1.0 / (theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    if scaling is None:
        return inv
    if scaling.kind == "linear":
        return inv / scaling.factor
    if scaling.kind == "llama3":
        factor, low, high = scaling.factor, scaling.low_freq_factor, scaling.high_freq_factor
        old = scaling.original_max_position_embeddings
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / low, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) & ~(wavelen > old / low)
        return np.where(medium, smoothed, scaled)
    if scaling.kind == "yarn":
        low, high = yarn_correction_range(theta, dim, scaling.beta_fast, scaling.beta_slow,
                                          scaling.original_max_position_embeddings, scaling.truncate)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(dim // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extrapolation = 1 - ramp
        return (inv / scaling.factor) * (1 - extrapolation) + inv * extrapolation
    raise ValueError(f"no float64 golden for RoPE scaling {scaling.kind!r}")


def attention_factor(scaling=None) -> float:
    """YaRN's cos/sin factor (``attention_factor``, else from mscale / mscale_all_dim); 1 otherwise."""
    if scaling is None or scaling.kind != "yarn":
        return 1.0
    if scaling.attention_factor is not None:
        return scaling.attention_factor
    if scaling.mscale and scaling.mscale_all_dim:
        return _get_mscale(scaling.factor, scaling.mscale) / _get_mscale(scaling.factor, scaling.mscale_all_dim)
    return _get_mscale(scaling.factor)


def mla_scale_factor(scaling=None) -> float:
    """yarn_get_mscale(factor, mscale_all_dim)^2 where ``mscale_all_dim`` is non-zero, else 1."""
    if scaling is None or not scaling.mscale_all_dim:
        return 1.0
    m = _get_mscale(scaling.factor, scaling.mscale_all_dim)
    return m * m
