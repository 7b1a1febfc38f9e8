"""FP8 e4m3 (isa/fp8.py): the decoding of all 256 codes is OCP E4M3's; the encoding rounds to the
nearest value, ties to even, saturates to +-448 and maps NaN to 0x7F, checked exhaustively over every
code, on every rounding boundary and against a brute-force nearest-value search over all 65536 bf16
inputs."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics as N
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.fp8 import FP8_DECODE_F32, FP8_MAX, FP8_NAN_BITS, FP8_TO_BF16_BITS, fp8_bits, fp8_widen
from opbsim.isa.types import DType

CODES = np.arange(256, dtype=np.uint8)
FINITE = CODES[~np.isnan(FP8_DECODE_F32)]
POSITIVE = np.array([c for c in range(0x00, 0x7F)], dtype=np.uint8)  # +0 .. 448, increasing


def _brute_force(x: np.ndarray) -> np.ndarray:
    """The nearest finite e4m3 value by search (ties: the even code), saturated at +-448; NaN -> 0x7F."""
    vals = FP8_DECODE_F32[FINITE].astype(np.float64)
    with np.errstate(invalid="ignore"):
        xs = np.clip(x.astype(np.float64), -FP8_MAX, FP8_MAX)
    d = np.abs(xs[:, None] - vals[None, :])
    best = d.min(axis=1, keepdims=True)
    cand = (d == best) & ((FINITE[None, :] & 1) == 0)  # ties go to the even code
    cand = np.where(cand.any(axis=1, keepdims=True), cand, d == best)
    code = FINITE[np.argmax(cand, axis=1)]
    zero = best[:, 0] == np.abs(xs)  # a result of 0 keeps the sign of x
    code = np.where((vals[np.argmax(cand, axis=1)] == 0) & zero, np.where(np.signbit(x), 0x80, 0x00), code)
    return np.where(np.isnan(x), FP8_NAN_BITS, code).astype(np.uint8)


def test_decoding_is_ocp_e4m3_for_named_codes():
    named = {0x00: 0.0, 0x01: 2.0**-9, 0x07: 7 * 2.0**-9, 0x08: 2.0**-6, 0x38: 1.0, 0x39: 1.125,
             0x7E: 448.0, 0xFE: -448.0, 0xB8: -1.0}
    for code, value in named.items():
        assert FP8_DECODE_F32[code] == np.float32(value), hex(code)
    assert np.signbit(FP8_DECODE_F32[0x80]) and FP8_DECODE_F32[0x80] == 0
    assert np.isnan(FP8_DECODE_F32[[0x7F, 0xFF]]).all()
    assert FINITE.size == 254 and not np.isinf(FP8_DECODE_F32).any()


def test_positive_codes_are_increasing_and_negative_codes_mirror_them():
    assert np.all(np.diff(FP8_DECODE_F32[POSITIVE].astype(np.float64)) > 0)
    assert np.array_equal(FP8_DECODE_F32[POSITIVE | 0x80], -FP8_DECODE_F32[POSITIVE])


def test_every_code_round_trips_and_widening_to_bf16_is_exact():
    back = fp8_bits(fp8_widen(CODES))
    assert np.array_equal(back[FINITE], FINITE)
    assert np.all(back[[0x7F, 0xFF]] == FP8_NAN_BITS)
    assert np.array_equal(bf16_widen(FP8_TO_BF16_BITS)[FINITE], FP8_DECODE_F32[FINITE])


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_rounding_boundary_goes_to_the_nearest_code_and_ties_to_the_even_one(sign):
    lo, hi = POSITIVE[:-1], POSITIVE[1:]
    vlo, vhi = FP8_DECODE_F32[lo], FP8_DECODE_F32[hi]
    mid = ((vlo.astype(np.float64) + vhi) / 2).astype(np.float32)  # exact: one more significand bit
    assert np.all(mid.astype(np.float64) == (vlo.astype(np.float64) + vhi) / 2)
    even = np.where(lo % 2 == 0, lo, hi)
    s = np.uint8(0x80 if sign < 0 else 0)
    assert np.array_equal(fp8_bits(np.float32(sign) * mid), even | s)
    above = np.nextafter(mid, np.float32(np.inf))
    below = np.nextafter(mid, np.float32(0))
    assert np.array_equal(fp8_bits(np.float32(sign) * above), hi | s)
    assert np.array_equal(fp8_bits(np.float32(sign) * below), lo | s)


def test_overflow_saturates_to_448_and_nan_is_canonical():
    x = np.array([448.0, 460.0, 464.0, 464.0001, 480.0, 1e30, np.inf, -500.0, -np.inf, np.nan, -np.nan],
                 dtype=np.float32)
    assert fp8_bits(x).tolist() == [0x7E, 0x7E, 0x7E, 0x7E, 0x7E, 0x7E, 0x7E, 0xFE, 0xFE, 0x7F, 0x7F]


def test_underflow_keeps_the_sign_and_rounds_the_half_of_the_smallest_subnormal_to_zero():
    above = np.nextafter(np.float32(2.0**-10), np.float32(1.0))
    x = np.array([2.0**-10, above, -(2.0**-10), 3 * 2.0**-10, 2.0**-149, -(2.0**-149)], dtype=np.float32)
    assert fp8_bits(x).tolist() == [0x00, 0x01, 0x80, 0x02, 0x00, 0x80]


def test_the_encoding_of_every_bf16_value_is_the_nearest_e4m3_value():
    x = bf16_widen(np.arange(65536, dtype=np.uint32).astype(np.uint16))
    assert np.array_equal(fp8_bits(x), _brute_force(x))


def test_the_encoding_of_random_fp32_values_near_the_grid_is_the_nearest_e4m3_value():
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(200_000) * np.exp2(rng.uniform(-12, 10, 200_000))).astype(np.float32)
    for chunk in np.array_split(x, 20):
        assert np.array_equal(fp8_bits(chunk), _brute_force(chunk))


def test_store_cvt_and_widen_use_the_e4m3_conversions():
    x = np.array([1.0625, -3.3, 1000.0, np.nan], dtype=np.float32)
    assert np.array_equal(N.store(x, DType.FP8_E4M3), fp8_bits(x))
    assert np.array_equal(N.widen(CODES, DType.FP8_E4M3)[FINITE], FP8_DECODE_F32[FINITE])
    assert np.array_equal(N.cvt(CODES, DType.FP8_E4M3, DType.BF16)[FINITE], FP8_TO_BF16_BITS[FINITE])
    assert N.cvt(np.array([1.0625], np.float32), DType.FP32, DType.FP8_E4M3).tolist() == [0x38]  # tie to even
    assert DType.FP8_E4M3.itemsize_B == 1


def _act_quant_rows(rng, rows, width, group):
    return (rng.standard_normal((rows, width)) * 10.0 ** rng.uniform(-3, 3, (rows, 1))).astype(np.float32)


def test_act_quant_scales_each_group_by_its_absolute_maximum_over_448():
    rng = np.random.default_rng(5)
    x = _act_quant_rows(rng, 6, 300, 128)
    codes, scale = N.act_quant(x, 128)
    assert codes.shape == x.shape and codes.dtype == np.uint8 and scale.shape == (6, 3)
    for g, cols in enumerate((slice(0, 128), slice(128, 256), slice(256, 300))):
        amax = np.abs(x[:, cols]).max(axis=1)
        np.testing.assert_array_equal(scale[:, g], (amax / np.float32(448.0)).astype(np.float32))
        # the largest magnitude of each group lands on the largest code, +-448
        top = np.abs(FP8_DECODE_F32[codes[:, cols]]).max(axis=1)
        np.testing.assert_array_equal(top, np.full(6, 448.0, np.float32))


def test_act_quant_codes_are_quant_of_the_same_scales():
    rng = np.random.default_rng(6)
    x = _act_quant_rows(rng, 4, 64, 16)
    codes, scale = N.act_quant(x, 16)
    np.testing.assert_array_equal(codes, N.quant(x, scale, 16))


def test_act_quant_of_an_all_zero_group_has_the_eps_floor_and_zero_codes():
    x = np.zeros((2, 8), np.float32)
    x[1, 4:] = -0.0
    codes, scale = N.act_quant(x, 4)
    np.testing.assert_array_equal(scale, np.full((2, 2), np.float32(1e-10) / np.float32(448.0), np.float32))
    assert set(FP8_DECODE_F32[codes].ravel().tolist()) == {0.0}


def test_act_quant_of_a_group_with_a_nan_gives_the_canonical_nan_scale_and_nan_codes():
    x = np.ones((1, 8), np.float32)
    x[0, 5] = np.float32(np.nan)
    codes, scale = N.act_quant(x, 4)
    assert scale[0, 0] == 1 / np.float32(448.0) and scale.view(np.uint32)[0, 1] == 0x7FC00000
    assert (codes[0, 4:] == FP8_NAN_BITS).all() and (FP8_DECODE_F32[codes[0, :4]] == 448.0).all()


def test_act_quant_relative_error_is_within_the_e4m3_unit_roundoff():
    """|dequant(q) - x| <= 2^-4 |x| for every element above the group's subnormal range (3 mantissa bits)."""
    rng = np.random.default_rng(7)
    x = _act_quant_rows(rng, 8, 256, 128)
    codes, scale = N.act_quant(x, 128)
    back = FP8_DECODE_F32[codes].astype(np.float64) * np.repeat(scale, 128, axis=1)
    normal = np.abs(x) >= np.repeat(scale, 128, axis=1) * 2.0 ** -6  # e4m3's smallest normal, scaled
    err = np.abs(back - x)[normal] / np.abs(x.astype(np.float64))[normal]
    assert err.max() <= 2.0 ** -4 * (1 + 2.0 ** -20)
