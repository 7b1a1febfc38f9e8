"""bf16 storage: round to nearest even, no flush to zero, canonical NaN; widening is exact."""

from __future__ import annotations

import numpy as np

from opbsim.isa.floatbits import (
    BF16_CANONICAL_NAN_BITS,
    F32_CANONICAL_NAN_BITS,
    bf16_bits,
    bf16_widen,
    canonical_f32,
    f32_bits,
    f32_from_bits,
    ulp_error,
)


def _nearest_even_bf16(x: np.ndarray) -> np.ndarray:
    """Reference rounding, by comparing distances in float64 to the two bf16 neighbours."""
    with np.errstate(invalid="ignore"):
        return _nearest_even(x)


def _nearest_even(x: np.ndarray) -> np.ndarray:
    u = f32_bits(x).astype(np.uint32)
    lo_bits = (u >> 16).astype(np.uint32)
    lo = bf16_widen(lo_bits.astype(np.uint16)).astype(np.float64)
    hi_bits = lo_bits + 1
    hi = (hi_bits << 16).astype(np.uint32).view(np.float32).astype(np.float64)  # may be inf
    xv = x.astype(np.float64)
    d_lo, d_hi = np.abs(xv - lo), np.abs(hi - xv)
    # past the largest finite bf16, the upper neighbour is infinity: IEEE rounds as if it were 2^128
    d_hi = np.where(np.isinf(hi), np.abs(np.copysign(2.0**128, xv) - xv), d_hi)
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (lo_bits & 1 == 1))
    return np.where(pick_hi, hi_bits, lo_bits).astype(np.uint16)


def test_bf16_rounding_is_nearest_even_for_every_upper_half_and_each_critical_lower_half():
    upper = np.arange(1 << 16, dtype=np.uint32) << 16
    lows = np.array([0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF], dtype=np.uint32)
    x = f32_from_bits((upper[:, None] | lows[None, :]).ravel())
    finite = ~np.isnan(x)
    assert np.array_equal(bf16_bits(x[finite]), _nearest_even_bf16(x[finite]))


def test_bf16_rounding_of_random_fp32_matches_the_reference():
    rng = np.random.default_rng(3)
    x = f32_from_bits(rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32))
    x = x[~np.isnan(x)]
    assert np.array_equal(bf16_bits(x), _nearest_even_bf16(x))


def test_widening_a_bf16_is_exact_and_rounding_it_back_gives_the_same_bits():
    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    wide = bf16_widen(bits)
    assert np.array_equal(f32_bits(wide), bits.astype(np.uint32) << 16)
    not_nan = ~np.isnan(wide)
    assert np.array_equal(bf16_bits(wide[not_nan]), bits[not_nan])


def test_every_nan_rounds_to_the_canonical_bf16_nan_whatever_its_sign_and_payload():
    nans = f32_from_bits(np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF, 0x7FBFFFFF], dtype=np.uint32))
    assert (bf16_bits(nans) == BF16_CANONICAL_NAN_BITS).all()
    assert (f32_bits(canonical_f32(nans)) == F32_CANONICAL_NAN_BITS).all()


def test_values_past_the_largest_bf16_overflow_to_infinity_at_the_tie_and_not_before():
    just_below_tie = f32_from_bits(np.uint32(0x7F7F7FFF))
    tie = f32_from_bits(np.uint32(0x7F7F8000))  # halfway to 2^128, the odd 0x7F7F rounds up
    assert bf16_bits(just_below_tie) == 0x7F7F
    assert bf16_bits(tie) == 0x7F80
    assert bf16_bits(-tie) == 0xFF80
    assert bf16_bits(np.float32(np.finfo(np.float32).max)) == 0x7F80


def test_subnormals_are_kept_not_flushed_to_zero():
    smallest_bf16 = f32_from_bits(np.uint32(0x00010000))  # 2^-133
    assert bf16_bits(smallest_bf16) == 0x0001
    assert bf16_widen(np.uint16(0x0001)) == np.float32(2.0**-133)
    assert bf16_bits(f32_from_bits(np.uint32(0x00008000))) == 0x0000  # tie: to even (zero)
    assert bf16_bits(f32_from_bits(np.uint32(0x00018000))) == 0x0002  # tie: to even (two)
    assert bf16_bits(np.float32(-(2.0**-149))) == 0x8000  # rounds to -0, keeps its sign


def test_ulp_error_measures_in_the_spacing_at_the_exact_value_and_counts_overflow_as_2_to_128():
    assert ulp_error(np.float32(1.0), 1.0 + 2.0**-23) == 1.0
    assert ulp_error(np.float32(2.0**-149), 0.0) == 1.0
    assert ulp_error(np.float32(np.inf), float(np.finfo(np.float32).max)) == 1.0
    assert ulp_error(np.float32(np.inf), np.inf) == 0.0
    assert ulp_error(np.float32(np.nan), np.nan) == 0.0
