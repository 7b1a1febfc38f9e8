"""softmax and rmsnorm against float64, over >= 1e6 outputs each, within the documented
first-order worst-case bounds (docs/numerics.md), in float32 ulps of the float64 result:

  softmax (row of N, s = fl(x * scale), m = max s):  5 + N + ln N + |s_j - m|
  rmsnorm (row of H):                                6 + H / 2
"""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics as N
from opbsim.isa.floatbits import ulp_error


def _softmax64(s: np.ndarray) -> np.ndarray:
    s = s.astype(np.float64)
    z = np.exp(s - s.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize(("n", "sigma"), [(8, 4.0), (64, 16.0), (1024, 4.0), (4096, 1.0)])
def test_softmax_is_within_its_documented_bound_of_float64(n, sigma):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal((max(1, (1 << 20) // n), n)) * sigma).astype(np.float32)
    scale = 0.125  # a power of two: s = x * scale is exact, so float64 sees the same scores
    s = x * np.float32(scale)
    y = N.softmax(x, scale)
    err = ulp_error(y, _softmax64(s))
    d = np.abs(s.astype(np.float64) - s.max(axis=-1, keepdims=True))
    assert y.size >= 1_000_000 - n
    assert (err <= 5 + n + np.log(n) + d).all()


@pytest.mark.parametrize("h", [64, 4096])
def test_rmsnorm_is_within_its_documented_bound_of_float64(h):
    rng = np.random.default_rng(h)
    x = (rng.standard_normal(((1 << 20) // h, h)) * 10.0 ** rng.uniform(-3, 3, ((1 << 20) // h, 1))).astype(np.float32)
    w = rng.standard_normal(h).astype(np.float32)
    eps = np.float32(1e-5)
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + float(eps)) * w
    assert ulp_error(N.rmsnorm(x, w, float(eps)), ref).max() <= 6 + h / 2
