"""RoPE frequency tables with the long-context scalings of ``transformers``, and the fp32 scale factors
that go with them: host constants, each correctly rounded to binary32.

The rope instruction reads its frequencies as an operand (numerics.rope); these functions compute
that table for a scaled model. Each entry is the real-number value of the formula, evaluated in
60-digit decimal arithmetic and rounded once to binary32, certified against the rounding midpoints
(elementary.nearest_f32), exactly as the unscaled table (elementary.rope_inv_freq). ``transformers``
evaluates the same formulas in float32 / float64 steps, so its table may differ from these in the
last bit; the formulas are those of transformers' ``modeling_rope_utils.py`` (v4.56 to v5):

- ``_compute_linear_scaling_rope_parameters``: f[i] = theta^(-2i/D) / factor;
- ``_compute_llama3_parameters``: with w = 2 pi / theta^(-2i/D), L = original_max_position_embeddings,
  a wavelength above L / low_freq_factor is divided by factor, one below L / high_freq_factor kept,
  one between smoothed: s = (L / w - low) / (high - low), f = (1 - s) inv / factor + s inv;
- ``_compute_yarn_parameters``: the correction range [lo, hi] of find_correction_range (below);
  ramp[i] = clamp((i - lo) / (hi - lo), 0, 1) (``linear_ramp_factor``; hi += 0.001 when lo = hi),
  f[i] = (inv / factor) ramp[i] + inv (1 - ramp[i]); the attention factor scales cos and sin.

i runs over 0..D/2-1 everywhere, D the rotated width.
"""

from __future__ import annotations

import functools
from decimal import Decimal, localcontext

import numpy as np

from opbsim.isa.elementary import nearest_f32

__all__ = ["linear_inv_freq", "llama3_inv_freq", "yarn_inv_freq", "yarn_correction_range", "yarn_attention_factor",
           "yarn_get_mscale", "mla_softmax_scale"]

_PREC = 60


def _pi() -> Decimal:
    """pi at the context's precision (the series of the ``decimal`` module's documentation)."""
    with localcontext() as ctx:
        ctx.prec += 2
        three = Decimal(3)
        lasts, t, s, n, na, d, da = 0, three, 3, 1, 0, 0, 24
        while s != lasts:
            lasts = s
            n, na = n + na, na + 8
            d, da = d + da, da + 32
            t = (t * n) / d
            s += t
    return +s


def _check(theta: float, dim: int) -> None:
    if not theta > 0 or dim < 2 or dim % 2:
        raise ValueError(f"rope needs theta > 0 and an even dimension >= 2, got {theta}, {dim}")


def _inv(theta: Decimal, i: int, dim: int) -> Decimal:
    """theta^(-2i/dim) at the context's precision."""
    return ((Decimal(-2 * i) / Decimal(dim)) * theta.ln()).exp()


def _table(values) -> np.ndarray:
    return np.array([nearest_f32(v) for v in values], dtype=np.float32)


def linear_inv_freq(theta: float, dim: int, factor: float) -> np.ndarray:
    """theta^(-2i/dim) / factor, each correctly rounded to fp32 (``factor`` > 0)."""
    _check(theta, dim)
    return np.array(_linear(float(theta), int(dim), float(factor)), dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _linear(theta: float, dim: int, factor: float) -> tuple[float, ...]:
    with localcontext() as ctx:
        ctx.prec = _PREC
        t = Decimal(theta)
        return tuple(_table(_inv(t, i, dim) / Decimal(factor) for i in range(dim // 2)).tolist())


def llama3_inv_freq(theta: float, dim: int, factor: float, low_freq_factor: float, high_freq_factor: float,
                    original_max_position_embeddings: int) -> np.ndarray:
    """Llama 3.1's frequencies (transformers ``_compute_llama3_parameters``), each correctly rounded
    to fp32; ``low_freq_factor`` < ``high_freq_factor``."""
    _check(theta, dim)
    if not low_freq_factor < high_freq_factor:
        raise ValueError(f"llama3 RoPE needs low_freq_factor < high_freq_factor, got {low_freq_factor}, "
                         f"{high_freq_factor}")
    return np.array(_llama3(float(theta), int(dim), float(factor), float(low_freq_factor), float(high_freq_factor),
                            int(original_max_position_embeddings)), dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _llama3(theta: float, dim: int, factor: float, low: float, high: float, old: int) -> tuple[float, ...]:
    with localcontext() as ctx:
        ctx.prec = _PREC
        two_pi = 2 * _pi()
        f, lo, hi, length = Decimal(factor), Decimal(low), Decimal(high), Decimal(old)
        out = []
        for i in range(dim // 2):
            inv = _inv(Decimal(theta), i, dim)
            wavelen = two_pi / inv
            if wavelen > length / lo:
                out.append(inv / f)
            elif wavelen < length / hi:
                out.append(inv)
            else:
                s = (length / wavelen - lo) / (hi - lo)
                out.append((1 - s) * inv / f + s * inv)
        return tuple(_table(out).tolist())


def yarn_correction_range(theta: float, dim: int, beta_fast: float, beta_slow: float,
                          original_max_position_embeddings: int, truncate: bool = True) -> tuple[Decimal, Decimal]:
    """transformers' ``find_correction_range`` (in ``_compute_yarn_parameters``): with
    d(n) = dim ln(L / (2 pi n)) / (2 ln theta), L = original_max_position_embeddings,
    lo = d(beta_fast), hi = d(beta_slow), floored and ceiled when ``truncate``; then
    (max(lo, 0), min(hi, dim - 1)). Exact integers when truncated, else 60-digit decimals."""
    if not theta > 1:
        raise ValueError(f"yarn RoPE needs theta > 1, got {theta}")
    with localcontext() as ctx:
        ctx.prec = _PREC
        two_pi, ln_theta, length = 2 * _pi(), Decimal(theta).ln(), Decimal(original_max_position_embeddings)

        def d(n: float) -> Decimal:
            return Decimal(dim) * (length / (two_pi * Decimal(n))).ln() / (2 * ln_theta)

        lo, hi = d(beta_fast), d(beta_slow)
        if truncate:
            lo, hi = Decimal(int(lo.to_integral_value(rounding="ROUND_FLOOR"))), \
                Decimal(int(hi.to_integral_value(rounding="ROUND_CEILING")))
        return max(lo, Decimal(0)), min(hi, Decimal(dim - 1))


def yarn_inv_freq(theta: float, dim: int, factor: float, beta_fast: float, beta_slow: float,
                  original_max_position_embeddings: int, truncate: bool = True) -> np.ndarray:
    """YaRN's frequencies (transformers ``_compute_yarn_parameters``), each correctly rounded to fp32."""
    _check(theta, dim)
    return np.array(_yarn(float(theta), int(dim), float(factor), float(beta_fast), float(beta_slow),
                          int(original_max_position_embeddings), bool(truncate)), dtype=np.float32)


@functools.lru_cache(maxsize=64)
def _yarn(theta: float, dim: int, factor: float, beta_fast: float, beta_slow: float, old: int,
          truncate: bool) -> tuple[float, ...]:
    lo, hi = yarn_correction_range(theta, dim, beta_fast, beta_slow, old, truncate)
    with localcontext() as ctx:
        ctx.prec = _PREC
        if lo == hi:
            hi += Decimal("0.001")
        f = Decimal(factor)
        out = []
        for i in range(dim // 2):
            ramp = min(max((Decimal(i) - lo) / (hi - lo), Decimal(0)), Decimal(1))
            inv = _inv(Decimal(theta), i, dim)
            out.append(inv / f * ramp + inv * (1 - ramp))
        return tuple(_table(out).tolist())


def yarn_get_mscale(scale: float, mscale: float = 1.0) -> Decimal:
    """0.1 mscale ln(scale) + 1, or 1 when scale <= 1 (transformers' ``get_mscale`` in
    ``_compute_yarn_parameters``, DeepSeek's ``yarn_get_mscale``), to 60 digits."""
    if scale <= 1:
        return Decimal(1)
    with localcontext() as ctx:
        ctx.prec = _PREC
        return Decimal("0.1") * Decimal(mscale) * Decimal(scale).ln() + 1


def yarn_attention_factor(factor: float, attention_factor: float | None = None, mscale: float | None = None,
                          mscale_all_dim: float | None = None) -> float:
    """The factor YaRN multiplies cos and sin by, correctly rounded to fp32: ``attention_factor`` when
    given; else get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim) when both are non-zero
    (DeepSeek: 1 when they are equal); else get_mscale(factor) (transformers ``_compute_yarn_parameters``)."""
    if attention_factor is not None:
        return float(np.float32(attention_factor))
    with localcontext() as ctx:
        ctx.prec = _PREC
        if mscale and mscale_all_dim:
            m = yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)
        else:
            m = yarn_get_mscale(factor)
        return nearest_f32(m, "yarn attention factor")


def mla_softmax_scale(qk_head_dim: int, factor: float | None = None, mscale_all_dim: float | None = None) -> float:
    """The softmax scale of multi-head latent attention, fp32: qk_head_dim^-0.5, times
    yarn_get_mscale(factor, mscale_all_dim)^2 when the model scales RoPE with a non-zero
    ``mscale_all_dim`` (transformers ``DeepseekV3Attention.__init__``, DeepSeek-V3's model.py
    ``MLA.__init__``), correctly rounded. Without it: fp32(1 / sqrt(qk_head_dim)) as float64 gives it."""
    if not (factor and mscale_all_dim):
        return float(np.float32(1.0 / np.sqrt(qk_head_dim)))
    with localcontext() as ctx:
        ctx.prec = _PREC
        m = yarn_get_mscale(factor, mscale_all_dim)
        return nearest_f32(m * m / Decimal(qk_head_dim).sqrt(), "softmax scale")

