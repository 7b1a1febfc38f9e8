"""The float64 golden layers agree with themselves: prefill vs decode, per-sequence decode, RoPE
as a rotation, and MoE identities."""

from __future__ import annotations

import numpy as np

from opbsim.emulator import golden


def _gqa(rng, h=48, nh=4, kvh=2, dh=8):
    s = h ** -0.5
    return golden.GQAWeights(1 + 0.1 * rng.standard_normal(h), rng.standard_normal((nh * dh, h)) * s,
                             rng.standard_normal((kvh * dh, h)) * s, rng.standard_normal((kvh * dh, h)) * s,
                             rng.standard_normal((h, nh * dh)) * s, nh, kvh, dh)


def test_rope_at_position_zero_is_the_identity_and_a_rotation_keeps_pair_norms():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 8))
    y = golden.rope(x, np.array([0, 3, 1000, 7, 9]), 10000.0)
    assert np.array_equal(y[:, 0], x[:, 0])
    pairs = lambda v: v[..., :4] ** 2 + v[..., 4:] ** 2  # noqa: E731
    assert np.allclose(pairs(y), pairs(x), rtol=1e-13)


def test_decoding_the_next_token_equals_the_last_row_of_a_longer_prefill():
    rng = np.random.default_rng(1)
    w = _gqa(rng)
    x = rng.standard_normal((9, 48))
    full, _, _ = golden.gqa_prefill(x, w, 1e6, 1e-5)
    _, k, v = golden.gqa_prefill(x[:8], w, 1e6, 1e-5)
    step = golden.gqa_decode(x[8:9], w, [k], [v], 1e6, 1e-5)
    assert np.allclose(step[0], full[8], rtol=1e-12, atol=1e-12)


def test_decode_treats_each_sequence_with_its_own_cache():
    rng = np.random.default_rng(2)
    w = _gqa(rng)
    xs = [rng.standard_normal((n + 1, 48)) for n in (3, 6)]
    caches = [golden.gqa_prefill(x[:-1], w, 1e4, 1e-5)[1:] for x in xs]
    out = golden.gqa_decode(np.stack([x[-1] for x in xs]), w, [c[0] for c in caches], [c[1] for c in caches],
                            1e4, 1e-5)
    for b, x in enumerate(xs):
        assert np.allclose(out[b], golden.gqa_prefill(x, w, 1e4, 1e-5)[0][-1], rtol=1e-12, atol=1e-12)


def test_moe_with_identical_experts_and_renormalised_gates_is_one_expert_plus_the_residual():
    rng = np.random.default_rng(3)
    h, f, e = 16, 24, 4
    one = [rng.standard_normal(s) * 0.3 for s in ((f, h), (f, h), (h, f))]
    w = golden.MoEWeights(np.ones(h), rng.standard_normal((e, h)), *(np.stack([m] * e) for m in one),
                          np.zeros((0, f, h)), np.zeros((0, f, h)), np.zeros((0, h, f)))
    x = rng.standard_normal((5, h))
    r = golden.moe_layer(x, w, 2, 1e-5)
    hn = golden.rmsnorm(x, w.norm, 1e-5)
    assert np.allclose(r.out, x + (golden.silu(hn @ one[0].T) * (hn @ one[1].T)) @ one[2].T, rtol=1e-12)
    assert np.allclose(r.weights.sum(axis=1), 1.0)


def test_moe_shared_experts_add_unweighted_and_fixed_selection_is_respected():
    rng = np.random.default_rng(4)
    h, f, e = 8, 12, 3
    experts = [rng.standard_normal((e, f, h)), rng.standard_normal((e, f, h)), rng.standard_normal((e, h, f))]
    shared = [rng.standard_normal((1, f, h)), rng.standard_normal((1, f, h)), rng.standard_normal((1, h, f))]
    w = golden.MoEWeights(np.ones(h), rng.standard_normal((e, h)), *experts, *shared)
    w0 = golden.MoEWeights(np.ones(h), w.router, *experts, *(np.zeros((0,) + s.shape[1:]) for s in shared))
    x = rng.standard_normal((4, h))
    sel = np.array([[2], [0], [1], [2]])
    hn = golden.rmsnorm(x, w.norm, 1e-5)
    extra = (golden.silu(hn @ shared[0][0].T) * (hn @ shared[1][0].T)) @ shared[2][0].T
    with_shared = golden.moe_layer(x, w, 1, 1e-5, selected=sel)
    assert np.allclose(with_shared.out, golden.moe_layer(x, w0, 1, 1e-5, selected=sel).out + extra)
    assert np.array_equal(with_shared.selected, sel)


def test_relative_error_is_normwise():
    assert golden.relative_error(np.array([1.0, -1.0]), np.array([2.0, -1.0])) == (0.5, 1.0 / 3.0)


def test_a_bf16_matrix_operand_gives_the_float64_product_of_its_exact_values():
    from opbsim.emulator.layer_golden import Bf16Matrix
    from opbsim.isa.floatbits import bf16_widen
    from tests.unit.numerics.samples import bf16_values

    rng = np.random.default_rng(9)
    bits = bf16_values(rng, (300, 70))
    exact = bf16_widen(bits).astype(np.float64)
    x = rng.standard_normal((5, 300))
    assert np.allclose(x @ Bf16Matrix(bits), x @ exact, rtol=1e-13, atol=1e-13)
    assert np.allclose(x[:, :70] @ Bf16Matrix(bits).T, x[:, :70] @ exact.T, rtol=1e-13, atol=1e-13)  # transposed
    assert np.allclose(x[0] @ Bf16Matrix(bits[:, 10:40]), x[0] @ exact[:, 10:40], rtol=1e-13, atol=1e-13)  # 1-D
    assert (x @ Bf16Matrix(bits)).dtype == np.float64 and Bf16Matrix(bits).T.shape == (70, 300)
