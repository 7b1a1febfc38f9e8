"""numerics_fp8 against its own statement and against float64.

gemm_fp8 equals a scalar transcription of its definition; with one block and unit scales it is
numerics.gemm; and it is within a derived error bound of the float64 value of
sum_j sa[m, j] sb[j, n/bn] sum_{k in block j} a[m, k] b[k, n].

The bound (standard forward analysis of recursive summation, Higham, Accuracy and Stability of
Numerical Algorithms, 2nd ed., section 4.2, with u = 2^-24 and gamma_n = n u / (1 - n u)): the products
a * b are exact in fp32; a term of block j passes through at most (block_k - 1) rounded adds of the
block sum, the rounded scale product sa * sb, the rounded multiply s * p and at most (KB - 1) rounded
adds into the accumulator (the first add to +0 is exact): block_k + KB roundings, so
    |y - exact| <= gamma_{block_k + KB} * sum_j |sa sb| sum_k |a b|
while no intermediate underflows (the test's values keep every partial sum far above 2^-126). The
float64 reference errs by at most gamma^{(64)}_{K+2} times the same sum (u = 2^-53), added to the bound.
quant: for |x / s| in [2^-6, 448] the decoded e4m3 value times s is within 2^-4 (half an e4m3 ulp) plus
two fp32 roundings (the division, and the check's multiply by s) of x, relatively.
"""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics as N
from opbsim.isa.fp8 import fp8_bits, fp8_widen
from opbsim.isa.numerics_fp8 import blocks, gemm_fp8, quant


def _gamma(n: int, u: float) -> float:
    return n * u / (1 - n * u)


def _operands(rng, m, k, n, bk, bn, a_fp8):
    a = rng.standard_normal((m, k)).astype(np.float32) * 20
    a = fp8_widen(fp8_bits(a)) if a_fp8 else N.widen(N.store(a, N.DType.BF16), N.DType.BF16)
    b = fp8_widen(fp8_bits(rng.standard_normal((k, n)).astype(np.float32) * 100))
    sa = rng.uniform(0.01, 0.1, (m, blocks(k, bk))).astype(np.float32)
    sb = rng.uniform(1e-4, 1e-3, (blocks(k, bk), blocks(n, bn))).astype(np.float32)
    return a, b, sa, sb


def test_gemm_fp8_is_the_scalar_transcription_of_its_definition():
    rng = np.random.default_rng(0)
    m, k, n, bk, bn = 3, 11, 5, 4, 2
    a, b, sa, sb = _operands(rng, m, k, n, bk, bn, a_fp8=False)
    want = np.zeros((m, n), np.float32)
    for i in range(m):
        for c in range(n):
            acc = np.float32(0)
            for j in range(blocks(k, bk)):
                p = np.float32(0)
                for kk in range(j * bk, min(k, (j + 1) * bk)):
                    p = np.float32(p + np.float32(a[i, kk] * b[kk, c]))
                s = np.float32(sa[i, j] * sb[j, c // bn])
                acc = np.float32(acc + np.float32(s * p))
            want[i, c] = acc
    assert np.array_equal(gemm_fp8(a, b, sa, sb, bk, bn), want)


def test_one_block_with_unit_scales_is_the_plain_gemm():
    rng = np.random.default_rng(1)
    a, b, _, _ = _operands(rng, 4, 100, 6, 128, 128, a_fp8=True)
    ones_a, ones_b = np.ones((4, 1), np.float32), np.ones((1, 1), np.float32)
    assert np.array_equal(gemm_fp8(a, b, ones_a, ones_b, 128, 128), N.gemm(a, b))


@pytest.mark.parametrize(("m", "k", "n", "bk", "bn", "a_fp8"),
                         [(8, 1024, 256, 128, 128, True), (8, 1024, 256, 128, 128, False),
                          (4, 7168, 64, 128, 128, True), (6, 300, 40, 32, 16, False)])
def test_gemm_fp8_is_within_its_derived_bound_of_float64(m, k, n, bk, bn, a_fp8):
    rng = np.random.default_rng(m * k + n)
    a, b, sa, sb = _operands(rng, m, k, n, bk, bn, a_fp8)
    y = gemm_fp8(a, b, sa, sb, bk, bn).astype(np.float64)
    kb = blocks(k, bk)
    s64 = sa.astype(np.float64)[:, :, None] * sb.astype(np.float64)[None, :, np.arange(n) // bn]  # [m, kb, n]
    exact = np.zeros((m, n))
    magnitude = np.zeros((m, n))
    for j in range(kb):
        ks = slice(j * bk, min(k, (j + 1) * bk))
        a64, b64 = a[:, ks].astype(np.float64), b[ks, :].astype(np.float64)
        exact += s64[:, j, :] * (a64 @ b64)
        magnitude += np.abs(s64[:, j, :]) * (np.abs(a64) @ np.abs(b64))
    bound = (_gamma(bk + kb, 2.0**-24) + _gamma(k + 2, 2.0**-53)) * magnitude
    err = np.abs(y - exact)
    assert np.all(err <= bound), float(np.max(err / bound))
    assert np.max(err / bound) > 1e-3  # the bound is not vacuous for these sizes: errors are seen


def test_quant_then_scaling_back_is_within_half_an_e4m3_ulp():
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((64, 512)) * 3).astype(np.float32)
    amax = np.abs(x.reshape(64, 4, 128)).max(axis=-1)
    s = (amax / np.float32(448)).astype(np.float32)  # DeepSeek-V3's act_quant scale
    back = fp8_widen(quant(x, s, 128)).astype(np.float64) * np.repeat(s, 128, axis=-1)
    r = np.abs(x.astype(np.float64) / np.repeat(s, 128, axis=-1))
    normal = (r >= 2.0**-6) & (r <= 448)
    rel = np.abs(back - x)[normal] / np.abs(x[normal])
    assert rel.max() <= 2.0**-4 + 2 * 2.0**-24
    assert normal.mean() > 0.99
