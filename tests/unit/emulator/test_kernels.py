"""The compiled kernels equal numerics.py bit for bit: random shapes (1, odd, not multiples of
the 16 x 16 tile, the k block or the work item), every layout, subnormals, infinities, NaN, ties,
products that overflow or fall into the subnormals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.emulator import kernels
from opbsim.isa import numerics as N
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.types import DType
from tests.unit.numerics.samples import bf16_values, special_bf16_bits


def _layout(raw: np.ndarray, how: str) -> np.ndarray:
    """The same logical matrix in another memory layout."""
    if how == "transposed":
        return np.ascontiguousarray(raw.T).T
    if how == "padded":
        padded = np.zeros((raw.shape[0], raw.shape[1] + 3), raw.dtype)
        padded[:, : raw.shape[1]] = raw
        return padded[:, : raw.shape[1]]
    if how == "reversed":  # negative strides on both axes
        return np.ascontiguousarray(raw[::-1, ::-1])[::-1, ::-1]
    if how == "strided":
        big = np.zeros((raw.shape[0] * 2, raw.shape[1]), raw.dtype)
        big[::2] = raw
        return big[::2]
    return raw


def _check(a, b, acc0):
    acc = acc0.copy()
    kernels.gemm_bf16(a, b, acc)
    want = N.store(N.gemm(bf16_widen(a), bf16_widen(b), acc0), DType.FP32)
    assert np.array_equal(N.store(acc, DType.FP32).view(np.uint32), want.view(np.uint32))


@settings(max_examples=60, deadline=None)
@given(m=st.integers(1, 70), k=st.integers(1, 300), n=st.integers(1, 150),
       la=st.sampled_from(["c", "transposed", "padded", "strided", "reversed"]),
       lb=st.sampled_from(["c", "transposed", "padded", "strided", "reversed"]),
       special=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_gemm_kernel_equals_the_definition_for_any_shape_and_layout(m, k, n, la, lb, special, seed):
    rng = np.random.default_rng(seed)
    if special:
        a = special_bf16_bits(rng, m * k).reshape(m, k)
        b = special_bf16_bits(rng, k * n).reshape(k, n)
    else:
        a, b = bf16_values(rng, (m, k)), bf16_values(rng, (k, n))
    acc0 = (rng.standard_normal((m, n)) * (rng.random() < 0.5)).astype(np.float32)
    _check(_layout(a, la), _layout(b, lb), acc0)


@pytest.mark.parametrize(("m", "k", "n"), [(64, 512, 256), (7, 2048, 300), (130, 200, 64)])
def test_gemm_kernel_in_its_parallel_schedule_equals_the_definition(m, k, n):
    rng = np.random.default_rng(m + k + n)
    a = bf16_values(rng, (m, k))
    b = _layout(bf16_values(rng, (k, n)), "transposed")
    _check(a, b, np.zeros((m, n), np.float32))


@pytest.mark.parametrize("lb", ["c", "transposed"])
def test_gemm_kernel_carries_each_sum_across_k_blocks_and_work_items(monkeypatch, lb):
    # blocks of 32 k (and a short last one), items of 32 rows x 16 columns, all in parallel
    monkeypatch.setattr(kernels, "_KB_MAX", 32)
    monkeypatch.setattr(kernels, "_MC", 32)
    monkeypatch.setattr(kernels, "_SERIAL_FLOPS", 0)
    rng = np.random.default_rng(5)
    for m, k, n in [(37, 100, 53), (16, 97, 16), (70, 33, 130)]:
        a = special_bf16_bits(rng, m * k).reshape(m, k) if m == 16 else bf16_values(rng, (m, k))
        b = _layout(bf16_values(rng, (k, n)), lb)
        _check(a, b, rng.standard_normal((m, n)).astype(np.float32))


def test_gemm_kernel_rounds_an_overflowing_product_to_infinity_before_adding_as_the_definition_does():
    # 2^127 x 2: the rounded product is +inf, so acc = -max + inf = inf; a fused multiply-add
    # would keep the exact product and return a finite 2^104
    m, k, n = 21, 3, 20  # 16 + 4 + 1 rows: every tile height
    a = np.full((m, k), 0x3F80, np.uint16)
    a[:, 1] = 0x7F00
    b = np.full((k, n), 0x3F80, np.uint16)
    b[1, :] = 0x4000
    acc0 = np.full((m, n), -np.finfo(np.float32).max, np.float32)
    _check(a, b, acc0)
    acc = acc0.copy()
    kernels.gemm_bf16(a, b, acc)
    assert np.all(np.isinf(acc))


def test_gemm_kernel_rejects_an_accumulator_it_cannot_update_in_place():
    a, b = np.zeros((4, 8), np.uint16), np.zeros((8, 6), np.uint16)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        kernels.gemm_bf16(a, b, np.zeros((6, 4), np.float32).T)


def test_gemm_kernel_rounds_products_into_the_subnormals_as_the_definition_does():
    # bf16 inputs near 2^-70: products fall below 2^-126, where only some of their bits survive
    rng = np.random.default_rng(7)
    a = (0x1C80 + rng.integers(0, 0x80, (24, 256))).astype(np.uint16)  # about 2^-70; 16 + 8 rows
    b = (0x1C80 + rng.integers(0, 0x80, (256, 64))).astype(np.uint16)
    _check(a, b, np.zeros((24, 64), np.float32))
    # the data discriminates: a fused multiply-add (exact product, one rounding per step) differs
    af, bf = bf16_widen(a).astype(np.float64), bf16_widen(b).astype(np.float64)
    fused = np.zeros((24, 64), np.float32)
    for k in range(256):
        fused = (fused.astype(np.float64) + af[:, k, None] * bf[None, k, :]).astype(np.float32)
    assert not np.array_equal(fused, N.gemm(bf16_widen(a), bf16_widen(b)))


def test_gather_and_scatter_add_kernels_equal_the_definition():
    rng = np.random.default_rng(8)
    src = special_bf16_bits(rng, 6 * 500).reshape(6, 500)
    idx = rng.integers(0, 6, 9)
    out = np.empty((9, 500), np.uint16)
    kernels.gather_rows(src, idx, out)
    assert np.array_equal(out, N.gather(src, idx))
    acc = rng.standard_normal((6, 500)).astype(np.float32)
    rows = bf16_widen(special_bf16_bits(rng, 9 * 500).reshape(9, 500))
    w = rng.standard_normal(9).astype(np.float32)
    want = N.scatter_add(acc, rows, idx, w)
    got = acc.copy()
    kernels.scatter_add_rows(got, rows, idx, w)
    assert np.array_equal(N.store(got, DType.FP32).view(np.uint32), N.store(want, DType.FP32).view(np.uint32))
