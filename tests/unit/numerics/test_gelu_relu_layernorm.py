"""gelu, relu and layernorm: definitions, special values and measured error bounds vs float64."""

import numpy as np

from opbsim.isa import numerics as N
from opbsim.isa.floatbits import f32_bits, f32_from_bits, ulp_error

_C1 = 2 * np.sqrt(2 / np.pi)


def gelu64(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 GELU (tanh form) as x * sigmoid(z), and z."""
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        z = xd * _C1 * (1 + 0.044715 * xd * xd)
        y = np.where(z < 0, xd * np.exp(z) / (1 + np.exp(z)), xd / (1 + np.exp(-z)))
    return np.where(np.isnan(y), 0.0, y), z


def test_gelu_is_within_2_plus_3_abs_z_ulp_of_float64_over_two_million_inputs():
    # The sigmoid argument z takes four fp32 roundings and two rounded constants before exp, so e^z
    # inherits up to ~3 |z| 2^-24 of relative error (measured: 2.7 |z|); for x >= 0 below 2 ulp (measured 1.76).
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.uniform(-12, 12, 1_000_000),
                        f32_from_bits(rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32))])
    x = x[np.isfinite(x)].astype(np.float32)
    ref, z = gelu64(x)
    err = ulp_error(N.gelu(x), ref)
    assert (err <= 2 + 3 * np.abs(np.where(np.isfinite(z), z, 0))).all()
    assert err[x >= 0].max() < 2


def test_gelu_special_values():
    y = N.gelu(np.array([np.inf, -np.inf, np.nan, 0.0, -0.0], np.float32))
    assert y[0] == np.inf and y[1] == 0 and np.signbit(y[1])
    assert f32_bits(y[2:3])[0] == 0x7FC00000
    assert y[3] == 0 and not np.signbit(y[3]) and np.signbit(y[4])


def test_gelu_keeps_tiny_results_of_negative_inputs_instead_of_flushing_them():
    y = N.gelu(np.array([-9.5], np.float32))
    ref, _ = gelu64(np.array([-9.5], np.float32))
    assert y[0] < 0 and abs(y[0] / ref[0] - 1) < 1e-4  # about -1e-30, not -0


def test_relu_zeroes_negatives_and_minus_zero_and_keeps_nan():
    x = np.array([-1.0, -0.0, 0.0, 2.5, np.inf, -np.inf, np.nan, 1e-45], np.float32)
    y = N.relu(x)
    assert list(y[:6]) == [0.0, 0.0, 0.0, 2.5, np.inf, 0.0]
    assert not np.signbit(y[1]) and np.isnan(y[6]) and y[7] == np.float32(1e-45)


def test_layernorm_follows_its_definition_step_by_step():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 33)).astype(np.float32)
    w, b = rng.standard_normal(33).astype(np.float32), rng.standard_normal(33).astype(np.float32)
    n = np.float32(33)
    c = x - N.seq_sum(x) / n
    want = ((c * N.rsqrt(N.seq_sum(c * c) / n + np.float32(1e-5))) * w) + b
    assert np.array_equal(f32_bits(N.layernorm(x, w, b, 1e-5)), f32_bits(want))


def test_layernorm_error_vs_float64_is_a_few_ulp_of_the_normalised_terms():
    rng = np.random.default_rng(4)
    h = 4096
    x = (rng.standard_normal((200, h)) * 3 + 1).astype(np.float32)
    w, b = rng.standard_normal(h).astype(np.float32), rng.standard_normal(h).astype(np.float32)
    xd = x.astype(np.float64)
    m = xd.mean(-1, keepdims=True)
    normed = (xd - m) / np.sqrt(((xd - m) ** 2).mean(-1, keepdims=True) + 1e-5)
    err = np.abs(N.layernorm(x, w, b, 1e-5) - (normed * w + b))
    scale = np.abs(normed * w) + np.abs(b)
    assert (err <= 4e-4 * scale + 1e-30).all()  # measured: 3.0e-4 of |c r w| + |b|, from the sums over h
