"""exp, silu, rsqrt, sin/cos: documented error bounds against float64 over >= 1e6 inputs each,
and the special values (NaN, infinities, zeros, subnormals) the definitions state.

Bounds (docs/numerics.md; exhaustive maxima from `python benchmarks/numerics_error.py --exhaustive`):
exp < 1 ulp, silu <= 3.5 ulp, rsqrt <= 1.5 ulp, sin/cos within 2 * 2^-24 absolute for |a| <= 2^15
and 8 * 2^-24 for |a| <= 2^21.
"""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics
from opbsim.isa.elementary import exp_scaled, rope_inv_freq, sincos
from opbsim.isa.floatbits import F32_CANONICAL_NAN_BITS, f32_bits, f32_from_bits, ulp_error

EXP_ULP, SILU_ULP, RSQRT_ULP = 1.0, 3.5, 1.5
N = 1 << 20


def _inputs(rng, n=N, lo=-104.0, hi=89.0):
    """Random bit patterns over all finite binary32 values plus a dense sweep of [lo, hi]."""
    bits = f32_from_bits(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32))
    return np.concatenate([bits[np.isfinite(bits)], rng.uniform(lo, hi, n).astype(np.float32)])


def test_exp_is_within_one_ulp_of_float64_over_the_whole_binary32_domain():
    x = _inputs(np.random.default_rng(0))
    assert x.size >= 1_000_000
    with np.errstate(over="ignore"):
        ref = np.exp(x.astype(np.float64))
    assert ulp_error(numerics.exp(x), ref).max() < EXP_ULP


def test_exp_results_in_the_subnormal_range_are_within_one_ulp_of_2_to_minus_149():
    x = np.random.default_rng(1).uniform(-104.0, -87.0, N).astype(np.float32)
    assert ulp_error(numerics.exp(x), np.exp(x.astype(np.float64))).max() < EXP_ULP


def test_silu_is_within_three_and_a_half_ulp_of_float64_including_tiny_results_of_very_negative_inputs():
    x = _inputs(np.random.default_rng(2), lo=-180.0, hi=40.0)
    x64 = x.astype(np.float64)
    with np.errstate(over="ignore"):
        ref = x64 / (1.0 + np.exp(-x64))
    assert ulp_error(numerics.silu(x), ref).max() <= SILU_ULP


def test_rsqrt_is_within_one_and_a_half_ulp_of_float64_for_every_positive_input():
    x = np.abs(_inputs(np.random.default_rng(3), lo=0.0, hi=1e4))
    x = x[x > 0]
    assert ulp_error(numerics.rsqrt(x), 1.0 / np.sqrt(x.astype(np.float64))).max() <= RSQRT_ULP


@pytest.mark.parametrize(("limit", "bound"), [(np.pi / 4, 1.0), (2.0**15, 2.0), (2.0**21, 8.0)])
def test_sin_and_cos_are_within_a_few_2_to_minus_24_of_float64(limit, bound):
    a = np.random.default_rng(4).uniform(-limit, limit, N).astype(np.float32)
    s, c = sincos(a)
    a64 = a.astype(np.float64)
    assert np.abs(s - np.sin(a64)).max() <= bound * 2.0**-24
    assert np.abs(c - np.cos(a64)).max() <= bound * 2.0**-24


def _bits(x) -> np.ndarray:
    return f32_bits(np.asarray(x, dtype=np.float32))


def test_exp_special_values():
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 89.0, -104.0, 2.0**-149, -(2.0**-149)], np.float32)
    y = numerics.exp(x)
    assert y[:2].tolist() == [1.0, 1.0]
    assert y[2] == np.inf and y[3] == 0.0 and y[5] == np.inf and y[6] == 0.0
    assert _bits(y[4]) == F32_CANONICAL_NAN_BITS
    assert y[7] == 1.0 and y[8] == 1.0  # e^(+-2^-149) rounds to 1


def test_exp_scaled_by_2_to_the_s_equals_exp_times_2_to_the_s_where_both_are_normal():
    x = np.random.default_rng(5).uniform(-80, 20, 10000).astype(np.float32)
    assert np.array_equal(exp_scaled(x, 64), numerics.exp(x) * np.float32(2.0**64))


def test_silu_special_values():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, -200.0, 200.0], np.float32)
    y = numerics.silu(x)
    assert y[0] == np.inf
    assert y[1] == 0.0 and np.signbit(y[1])  # the limit, -0
    assert _bits(y[2]) == F32_CANONICAL_NAN_BITS
    assert _bits(y[3]) == 0 and np.signbit(y[4]) and y[4] == 0.0
    assert y[5] == 0.0 and np.signbit(y[5]) and y[6] == 200.0


def test_silu_keeps_subnormal_results_of_very_negative_inputs():
    y = numerics.silu(np.array([-100.0], np.float32))
    assert 0 < -y[0] < np.finfo(np.float32).tiny  # -3.7e-42, a subnormal, not -0


def test_rsqrt_special_values():
    x = np.array([0.0, -0.0, np.inf, -1.0, np.nan, 2.0**-149, 4.0], np.float32)
    y = numerics.rsqrt(x)
    assert y[0] == np.inf and y[1] == -np.inf and _bits(y[2]) == 0
    assert _bits(y[3]) == F32_CANONICAL_NAN_BITS and _bits(y[4]) == F32_CANONICAL_NAN_BITS
    assert y[5] == np.float32(2.0**74.5) and y[6] == 0.5


def test_sincos_of_zero_is_exact_and_of_a_non_finite_angle_is_nan():
    s, c = sincos(np.array([0.0, -0.0, np.inf, np.nan], np.float32))
    assert s[0] == 0.0 and c[0] == 1.0 and s[1] == 0.0 and c[1] == 1.0  # sin(-0) is +0 here
    assert (_bits(s[2:]) == F32_CANONICAL_NAN_BITS).all() and (_bits(c[2:]) == F32_CANONICAL_NAN_BITS).all()


def test_rope_frequencies_are_the_binary32_values_nearest_to_50_digit_powers_of_theta():
    from decimal import Decimal, localcontext

    theta, dim = 500000.0, 128
    f = rope_inv_freq(theta, dim)
    with localcontext() as ctx:
        ctx.prec = 50
        for i in range(dim // 2):
            exact = Decimal(theta) ** (Decimal(-2 * i) / Decimal(dim))
            here = abs(Decimal(float(f[i])) - exact)
            for nb in (np.nextafter(f[i], np.float32(0)), np.nextafter(f[i], np.float32(2))):
                assert here <= abs(Decimal(float(nb)) - exact)


def test_rope_frequency_table_starts_at_one_and_matches_float64_pow_rounded_to_binary32():
    for theta, dim in ((10000.0, 128), (1e6, 64), (500000.0, 128), (10000.0, 2)):
        f = rope_inv_freq(theta, dim)
        assert f[0] == 1.0 and f.dtype == np.float32 and f.size == dim // 2
        ref = (theta ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)).astype(np.float32)
        assert np.array_equal(f, ref)


def test_rope_frequency_table_rejects_bad_arguments():
    with pytest.raises(ValueError, match="even dimension"):
        rope_inv_freq(10000.0, 3)
    with pytest.raises(ValueError, match="theta > 0"):
        rope_inv_freq(0.0, 4)
