"""The definitions of numerics.py, instruction by instruction: order of operations, rounding,
no fusing, zeros, NaN and infinities, ties."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics as N
from opbsim.isa.floatbits import F32_CANONICAL_NAN_BITS, bf16_bits, bf16_widen, f32_bits, f32_from_bits
from opbsim.isa.types import DType

f32 = np.float32


def _scalar_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The definition written as scalar float32 code: acc = +0; acc = acc + a*b for k in order."""
    m, k_dim = a.shape
    out = np.zeros((m, b.shape[1]), np.float32)
    with np.errstate(all="ignore"):
        for i in range(m):
            for j in range(b.shape[1]):
                acc = f32(0.0)
                for k in range(k_dim):
                    acc = f32(acc + f32(a[i, k] * b[k, j]))
                out[i, j] = acc
    return out


def test_gemm_equals_the_scalar_sequential_loop_on_bf16_inputs_with_special_values():
    rng = np.random.default_rng(0)
    from tests.unit.numerics.samples import special_bf16_bits

    a = bf16_widen(special_bf16_bits(rng, 7 * 9).reshape(7, 9))
    b = bf16_widen(special_bf16_bits(rng, 9 * 5).reshape(9, 5))
    want = _scalar_gemm(a, b)
    got = N.gemm(a, b)
    assert np.array_equal(f32_bits(N.store(got, DType.FP32)), f32_bits(N.store(want, DType.FP32)))


def test_gemm_adds_in_k_order_so_cancellation_depends_on_it():
    a = np.array([[1.0, 1.0, 1.0]], np.float32)
    b = np.array([[2.0**30], [1.0], [-(2.0**30)]], np.float32)
    assert N.gemm(a, b)[0, 0] == 0.0  # (2^30 + 1) rounds to 2^30, then cancels
    assert N.gemm(a[:, ::-1], b[::-1])[0, 0] == 0.0
    assert N.gemm(a[:, [0, 2, 1]], b[[0, 2, 1]])[0, 0] == 1.0


def test_gemm_rounds_each_product_before_adding_it_never_fused():
    # a product below the normal range is rounded to a subnormal, then added
    x = np.float32(1.0 + 2.0**-7) * np.float32(2.0**-70)  # bf16-exact
    a = np.array([[x, np.float32(2.0**-126)]], np.float32)
    b = np.array([[x], [np.float32(1.0)]], np.float32)
    p = np.float32(x * x)  # rounded: x*x needs 15 bits, the subnormal at 2^-140 keeps 9
    exact = float(x) * float(x) + 2.0**-126
    assert float(p) != float(x) * float(x)
    assert N.gemm(a, b)[0, 0] == np.float32(p + np.float32(2.0**-126))
    assert N.gemm(a, b)[0, 0] != np.float32(exact) or np.float32(p + np.float32(2.0**-126)) == np.float32(exact)
    # an overflowing product is +inf, even when the exact sum would be finite
    big = np.float32(2.0**64)
    a2 = np.array([[1.0, big]], np.float32)
    b2 = np.array([[-np.finfo(np.float32).max], [big]], np.float32)
    assert N.gemm(a2, b2)[0, 0] == np.inf


def test_gemm_sums_start_from_plus_zero_and_gemm_acc_continues_a_partial_sum():
    a = np.array([[-0.0, 1.0]], np.float32)
    b = np.array([[1.0], [-0.0]], np.float32)
    assert f32_bits(N.gemm(a, b))[0, 0] == 0  # -0 + -0 from +0 is +0
    acc = np.array([[-0.0]], np.float32)
    assert f32_bits(N.gemm(a, b, acc=acc))[0, 0] == 0x80000000  # -0 + -0 + -0 stays -0


def test_batched_gemm_is_the_gemm_of_each_batch_entry():
    rng = np.random.default_rng(1)
    a = bf16_widen(bf16_bits(rng.standard_normal((2, 3, 4, 5)).astype(np.float32)))
    b = bf16_widen(bf16_bits(rng.standard_normal((2, 3, 5, 6)).astype(np.float32)))
    got = N.gemm(a, b)
    for i in np.ndindex(2, 3):
        assert np.array_equal(got[i], N.gemm(a[i], b[i]))


def test_sum_adds_in_index_order_from_plus_zero():
    x = np.array([[2.0**30, 1.0, -(2.0**30), 1.0]], np.float32)
    assert N.reduce_sum(x)[0, 0] == 1.0
    assert N.reduce_sum(x[:, [0, 2, 1, 3]])[0, 0] == 2.0
    assert f32_bits(N.reduce_sum(np.array([-0.0, -0.0], np.float32)))[0] == 0


def test_max_propagates_nan_and_keeps_the_first_of_equal_zeros():
    x = np.array([[1.0, np.nan, 3.0], [-0.0, 0.0, -1.0], [0.0, -0.0, -np.inf]], np.float32)
    m = N.reduce_max(x)
    assert np.isnan(m[0, 0])
    assert f32_bits(m[1, 0]) == 0x80000000 and f32_bits(m[2, 0]) == 0


def test_topk_orders_descending_with_ties_to_the_lower_index_and_nan_first():
    x = np.array([[0.5, 2.0, 2.0, -0.0, 0.0, np.nan, np.inf]], np.float32)
    vals, idx = N.topk(x, 7)
    assert idx.tolist() == [[5, 6, 1, 2, 0, 3, 4]]
    assert idx.dtype == np.int32 and np.isnan(vals[0, 0]) and vals[0, 1] == np.inf


def test_softmax_masks_causally_relative_to_qpos_with_exact_zeros():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = N.softmax(x, 1.0, causal=True, qpos=1)
    assert (y[0, 2:] == 0).all() and (y[1, 3:] == 0).all() and (y[2] > 0).all()
    assert np.array_equal(y[0, :2], N.softmax(x[0, :2]))
    assert np.array_equal(N.softmax(x, 0.5), N.softmax(x * np.float32(0.5)))


def test_softmax_is_the_stated_sequence_of_fp32_steps():
    x = np.random.default_rng(2).standard_normal((5, 33)).astype(np.float32)
    s = x * np.float32(0.125)
    e = N.exp(s - N.reduce_max(s))
    assert np.array_equal(N.softmax(x, 0.125), e / N.seq_sum(e))


def test_softmax_of_a_row_with_an_unmasked_infinity_or_nan_is_nan():
    y = N.softmax(np.array([[1.0, np.inf, 2.0], [1.0, np.nan, 0.0], [-np.inf, -np.inf, -np.inf]], np.float32))
    assert np.isnan(y).all()


def test_rmsnorm_is_the_stated_sequence_of_fp32_steps():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 96)).astype(np.float32)
    w = rng.standard_normal(96).astype(np.float32)
    v = (N.seq_sum(x * x) / np.float32(96)) + np.float32(1e-5)
    assert np.array_equal(N.rmsnorm(x, w, 1e-5), (x * N.rsqrt(v)) * w)
    assert (N.rmsnorm(np.zeros((1, 8), np.float32), np.ones(8, np.float32), 1e-5) == 0).all()


def test_rope_rotates_halves_by_pos_times_the_frequency_table():
    from opbsim.isa.elementary import rope_inv_freq, sincos

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8)).astype(np.float32)
    pos = np.array([0, 7, 123456], np.int32)
    y = N.rope(x, pos, rope_inv_freq(10000.0, 8))
    assert np.array_equal(y[:, 0], x[:, 0])  # position 0: angle 0, cos 1, sin 0
    s, c = sincos(pos.astype(np.float32)[:, None] * rope_inv_freq(10000.0, 8)[None, :])
    x1, x2 = x[..., :4], x[..., 4:]
    assert np.array_equal(y[..., :4], x1 * c - x2 * s)
    assert np.array_equal(y[..., 4:], x2 * c + x1 * s)


def test_rope_with_an_mscale_rounds_cos_and_sin_times_it_to_fp32_before_rotating():
    from opbsim.isa.elementary import sincos

    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 5, 8)).astype(np.float32)
    pos = np.array([0, 1, 90, 4095, 131071], np.int32)
    freq = rng.uniform(1e-6, 1.0, 4).astype(np.float32)
    m = np.float32(1.3465736)
    y = N.rope(x, pos, freq, float(m))
    s, c = sincos(pos.astype(np.float32)[:, None] * freq[None, :])
    s, c = s * m, c * m  # fp32 products
    x1, x2 = x[..., :4], x[..., 4:]
    assert np.array_equal(y[..., :4], x1 * c - x2 * s) and np.array_equal(y[..., 4:], x2 * c + x1 * s)
    assert np.array_equal(y[:, 0], x[:, 0] * m)  # position 0: cos = m, sin = 0
    assert np.array_equal(N.rope(x, pos, freq, 1.0), N.rope(x, pos, freq))  # mscale 1: the unscaled rotation


def test_rope_refuses_a_frequency_table_of_the_wrong_width():
    with pytest.raises(ValueError, match="^rope needs 4 frequencies for a last axis of 8, got 3$"):
        N.rope(np.zeros((2, 8), np.float32), np.zeros(2, np.int32), np.ones(3, np.float32))


def test_scatter_add_accumulates_a_repeated_row_in_index_order():
    acc = np.zeros((2, 1), np.float32)
    src = np.array([[2.0**30], [1.0], [-(2.0**30)]], np.float32)
    w = np.ones(3, np.float32)
    assert N.scatter_add(acc, src, [1, 1, 1], w)[1, 0] == 0.0
    assert N.scatter_add(acc, src[[0, 2, 1]], [1, 1, 1], w)[1, 0] == 1.0


def test_scatter_moves_bits_and_a_later_index_wins():
    dst = np.zeros((3, 2), np.uint16)
    src = np.array([[1, 2], [3, 4], [0x7F81, 6]], np.uint16)
    out = N.scatter(dst, src, [2, 0, 2])
    assert out.tolist() == [[3, 4], [0, 0], [0x7F81, 6]]


def test_gather_and_copy_move_bits_unchanged_nan_payloads_included():
    raw = f32_from_bits(np.array([[0x7F800001], [0xFFC00001]], np.uint32))
    assert np.array_equal(f32_bits(N.gather(raw, [1, 0, 1])).ravel(), [0xFFC00001, 0x7F800001, 0xFFC00001])
    assert np.array_equal(f32_bits(N.copy(raw)), f32_bits(raw))


def test_cvt_float_to_i32_rounds_half_to_even_saturates_and_maps_nan_to_zero():
    x = np.array([0.5, 1.5, 2.5, -2.5, 3e9, -3e9, np.nan, -0.0], np.float32)
    assert N.cvt(x, DType.FP32, DType.I32).tolist() == [0, 2, 2, -2, 2**31 - 1, -(2**31), 0, 0]


def test_cvt_i32_to_bf16_rounds_through_fp32_twice():
    # 2^24 + 2^16 + 1: to fp32 -> 2^24 + 2^16 (tie... to even), then to bf16 -> 2^24 (tie, even)
    v = np.array([2**24 + 2**16 + 1], np.int32)
    twice = N.cvt(v, DType.I32, DType.BF16)
    assert bf16_widen(twice)[0] == np.float32(2.0**24)
    assert N.cvt(v, DType.I32, DType.FP32)[0] == np.float32(2**24 + 2**16)


def test_cvt_between_floats_is_exact_widening_and_rne_narrowing_with_canonical_nan():
    bits = np.arange(0, 1 << 16, 97, dtype=np.uint32).astype(np.uint16)
    wide = N.cvt(bits, DType.BF16, DType.FP32)
    assert np.array_equal(f32_bits(wide) >> 16, np.where(np.isnan(wide), 0x7FC0, bits))
    nan = f32_from_bits(np.array([0xFF800001], np.uint32))
    assert N.cvt(nan, DType.FP32, DType.BF16)[0] == 0x7FC0
    assert f32_bits(N.cvt(nan, DType.FP32, DType.FP32))[0] == F32_CANONICAL_NAN_BITS


def test_allreduce_adds_contributions_in_device_order_from_plus_zero():
    parts = [np.array([2.0**30], np.float32), np.array([1.0], np.float32), np.array([-(2.0**30)], np.float32)]
    assert N.allreduce(parts)[0] == 0.0
    assert N.allreduce([parts[0], parts[2], parts[1]])[0] == 1.0
    assert f32_bits(N.allreduce([np.array([-0.0], np.float32)] * 2))[0] == 0


def test_allgather_stacks_the_devices_sources_in_device_order():
    got = N.allgather([np.array([d, d], np.int32) for d in range(3)])
    assert got.tolist() == [[0, 0], [1, 1], [2, 2]]


def test_alltoall_sends_slice_j_to_device_j():
    src = [np.array([[10 * d + j] for j in range(3)], np.int32) for d in range(3)]
    got = N.alltoall(src)
    for i in range(3):
        assert got[i].ravel().tolist() == [10 * j + i for j in range(3)]


def test_elementwise_arithmetic_keeps_subnormals_and_follows_ieee_for_infinities():
    tiny = np.float32(2.0**-149)
    assert N.mul(np.array([tiny]), np.array([1.0]))[0] == tiny
    assert N.sub(np.array([2.0**-126], np.float32), np.array([2.0**-126 - 2.0**-149], np.float32))[0] == tiny
    assert np.isnan(N.div(np.array([0.0], np.float32), np.array([0.0], np.float32))[0])
    assert N.div(np.array([-1.0], np.float32), np.array([0.0], np.float32))[0] == -np.inf
    assert np.isnan(N.add(np.array([np.inf], np.float32), np.array([-np.inf], np.float32))[0])


def test_store_rounds_once_to_the_destination_and_canonicalises_nan():
    x = f32_from_bits(np.array([0x3F808000, 0x3F818000, 0xFFC12345], np.uint32))
    assert N.store(x, DType.BF16).tolist() == [0x3F80, 0x3F82, 0x7FC0]
    assert f32_bits(N.store(x, DType.FP32)).tolist() == [0x3F808000, 0x3F818000, F32_CANONICAL_NAN_BITS]


def test_the_definitions_accept_empty_shapes():
    """Descriptors cannot be empty (every dimension >= 1), but the definitions are total."""
    e = np.zeros((0, 5), np.float32)
    assert N.gemm(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32)).tolist() == [[0.0] * 4] * 3
    assert N.gemm(e, np.zeros((5, 2), np.float32)).shape == (0, 2)
    assert f32_bits(N.reduce_sum(np.zeros((2, 0), np.float32))).tolist() == [[0], [0]]
    assert N.reduce_max(np.zeros((1, 0), np.float32)).tolist() == [[-np.inf]]
    assert N.softmax(e).shape == (0, 5) and N.softmax(np.zeros((2, 0), np.float32)).shape == (2, 0)
    assert N.rmsnorm(e, np.ones(5, np.float32), 1e-5).shape == (0, 5)
    assert N.exp(e).shape == N.silu(e).shape == N.rsqrt(e).shape == (0, 5)
    vals, idx = N.topk(e, 2)
    assert vals.shape == idx.shape == (0, 2)
    assert N.gather(np.ones((3, 5), np.float32), np.zeros(0, np.int64)).shape == (0, 5)
    acc = np.ones((3, 5), np.float32)
    assert np.array_equal(N.scatter_add(acc, e, np.zeros(0, np.int64), np.zeros(0, np.float32)), acc)
    assert N.rope(np.zeros((0, 4), np.float32), np.zeros(0, np.int32), np.ones(2, np.float32)).shape == (0, 4)


def test_descriptors_cannot_be_empty_so_no_instruction_sees_an_empty_operand():
    import pytest

    from opbsim.errors import ProgramError
    from opbsim.isa.types import Descriptor, Space

    with pytest.raises(ProgramError, match="dimensions must be in 1..2\\^32-1"):
        Descriptor("x", Space.HBM, 0, DType.FP32, (0, 4), (4, 1))
