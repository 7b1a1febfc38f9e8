"""The numerics reference's fast products equal numerics.gemm bit for bit: shapes that cross the
64 x 512 output tile and the 64-deep B block, batch axes, transposed and strided operands, fp32
and bf16-bit right operands, partial sums, subnormals, signed zeros, infinities and NaN."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.emulator import ordered_gemm
from opbsim.isa import numerics as N
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.types import DType
from tests.unit.numerics.samples import bf16_values, special_bf16_bits, special_f32


def _stored(x: np.ndarray) -> np.ndarray:
    """fp32 results as an instruction stores them (every NaN canonical), as bits."""
    return N.store(x, DType.FP32).view(np.uint32)


def _layout(raw: np.ndarray, how: str) -> np.ndarray:
    if how == "transposed":  # the same matrix, columns contiguous
        return np.ascontiguousarray(np.swapaxes(raw, -1, -2)).swapaxes(-1, -2)
    if how == "strided":  # every other row of a larger array
        big = np.zeros((*raw.shape[:-2], raw.shape[-2] * 2, raw.shape[-1]), raw.dtype)
        big[..., ::2, :] = raw
        return big[..., ::2, :]
    return raw


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 140), n=st.integers(1, 600),
       lb=st.sampled_from(["c", "transposed", "strided"]), special=st.booleans(), with_acc=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_a_product_on_bf16_bits_equals_the_definition_for_any_shape_and_layout(m, k, n, lb, special, with_acc, seed):
    rng = np.random.default_rng(seed)
    if special:
        a, b = special_bf16_bits(rng, m * k).reshape(m, k), special_bf16_bits(rng, k * n).reshape(k, n)
    else:
        a, b = bf16_values(rng, (m, k)), bf16_values(rng, (k, n))
    acc = special_f32(rng, m * n).reshape(m, n) if with_acc else None
    want = N.gemm(bf16_widen(a), bf16_widen(b), acc)
    got = ordered_gemm.gemm_bf16(bf16_widen(a), _layout(b, lb), acc)
    assert np.array_equal(_stored(got), _stored(want))


@settings(max_examples=40, deadline=None)
@given(batch=st.sampled_from([(), (3,), (2, 2)]), m=st.integers(1, 9), k=st.integers(1, 150), n=st.integers(1, 90),
       lb=st.sampled_from(["c", "transposed", "strided"]), seed=st.integers(0, 2**32 - 1))
def test_a_batched_fp32_product_equals_the_definition(batch, m, k, n, lb, seed):
    rng = np.random.default_rng(seed)
    a = special_f32(rng, int(np.prod(batch, dtype=int)) * m * k).reshape(*batch, m, k)
    b = special_f32(rng, int(np.prod(batch, dtype=int)) * k * n).reshape(*batch, k, n)
    assert np.array_equal(_stored(ordered_gemm.gemm(a, _layout(b, lb))), _stored(N.gemm(a, b)))


@pytest.mark.parametrize(("m", "k", "n"), [(64, 512, 256), (70, 300, 1100), (5, 2048, 700)])
def test_a_product_large_enough_to_run_in_parallel_equals_the_definition(m, k, n):
    rng = np.random.default_rng(m + k + n)
    a = bf16_widen(bf16_values(rng, (m, k)))
    b = bf16_values(rng, (k, n), scale=1e-3)
    want = N.gemm(a, bf16_widen(b))
    assert not np.isnan(want).any()  # ordinary values: the raw bits (signed zeros too) must agree
    assert np.array_equal(ordered_gemm.gemm_bf16(a, b).view(np.uint32), want.view(np.uint32))
    assert np.array_equal(ordered_gemm.gemm(a, _layout(bf16_widen(b), "transposed")).view(np.uint32),
                          want.view(np.uint32))


def test_the_sums_run_in_k_order_with_each_product_rounded_before_it_is_added():
    # row 0: 2^24 + 1 - 2^24 is 0 in k order (the 1 is lost), 1 in reverse order;
    # row 1: -1 + (1 + 2^-23)(1 - 2^-23) is 0 with the product rounded (to 1), -2^-46 fused
    a = np.array([[2.0**24, 1.0, -(2.0**24)], [-1.0, 1.0 + 2.0**-23, 0.0]], np.float32)
    b = np.array([[1.0, 1.0], [1.0, 1.0 - 2.0**-23], [1.0, 0.0]], np.float32)
    got = ordered_gemm.gemm(a, b)
    assert np.array_equal(got.view(np.uint32), N.gemm(a, b).view(np.uint32))
    assert got[0, 0] == 0.0 and got[1, 1] == 0.0


def test_subnormal_products_and_signed_zeros_are_kept_as_the_definition_keeps_them():
    rng = np.random.default_rng(7)
    a = (0x1C80 + rng.integers(0, 0x80, (8, 256))).astype(np.uint16)  # about 2^-70: products below 2^-126
    b = (0x1C80 + rng.integers(0, 0x80, (256, 64))).astype(np.uint16)
    b[:, ::2] |= 0x8000  # negative columns
    want = N.gemm(bf16_widen(a), bf16_widen(b))
    assert np.array_equal(ordered_gemm.gemm_bf16(bf16_widen(a), b).view(np.uint32), want.view(np.uint32))
    zeros = np.full((2, 3), -0.0, np.float32)
    assert np.array_equal(ordered_gemm.gemm(zeros, np.ones((3, 2), np.float32)).view(np.uint32),
                          np.zeros((2, 2), np.float32).view(np.uint32))  # +0 + (-0) + ... = +0


def test_infinities_and_nan_give_nan_where_the_definition_does():
    a = np.array([[np.inf, -np.inf, 1.0], [np.nan, 1.0, 1.0], [0.0, np.inf, 2.0]], np.float32)
    b = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, -np.inf]], np.float32)
    want = N.gemm(a, b)
    assert np.array_equal(_stored(ordered_gemm.gemm(a, b)), _stored(want))
    assert np.isnan(want[0, 0]) and np.isnan(want[0, 1]) and want[2, 0] == np.inf  # inf - inf; inf * 0; inf


def test_bits_of_another_type_are_refused_rather_than_read_as_numbers():
    with pytest.raises(TypeError, match="uint16"):
        ordered_gemm.gemm_bf16(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))
    with pytest.raises(ValueError, match="inner or batch"):
        ordered_gemm.gemm(np.ones((2, 3), np.float32), np.ones((2, 2), np.float32))


def test_empty_and_zero_depth_products_give_the_starting_sums():
    acc = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(ordered_gemm.gemm(np.ones((2, 0), np.float32), np.ones((0, 3), np.float32), acc), acc)
    assert ordered_gemm.gemm(np.ones((0, 4), np.float32), np.ones((4, 3), np.float32)).shape == (0, 3)
