"""The attention softmax's window, chunk and sink (softmax_masked) as numerics.py defines them."""

import numpy as np

from opbsim.isa import numerics as N


def _scores(rng, shape):
    return (rng.standard_normal(shape) * 3).astype(np.float32)


def test_the_window_mask_shows_query_p_exactly_the_keys_p_minus_w_plus_1_to_p():
    m = N.causal_mask(5, 12, qpos=6, span=3)
    for r in range(5):
        p = 6 + r
        assert [c for c in range(12) if not m[r, c]] == [p - 2, p - 1, p]


def test_the_chunk_mask_shows_a_query_the_keys_of_its_own_chunk_up_to_itself():
    m = N.causal_mask(6, 12, qpos=2, span=4, chunked=True)
    for r in range(6):
        p = 2 + r
        assert [c for c in range(12) if not m[r, c]] == list(range(p // 4 * 4, p + 1))


def test_without_a_span_or_sink_the_masked_softmax_is_the_causal_softmax_bit_for_bit():
    x = _scores(np.random.default_rng(1), (3, 4, 9))
    assert np.array_equal(N.softmax(x, 0.25, True, 5), N.softmax(x, 0.25, True, 5, 0, False, False))


def test_a_window_gives_masked_keys_exactly_zero_and_renormalises_over_the_window():
    x = _scores(np.random.default_rng(2), (4, 10))
    y = N.softmax(x, 0.5, True, 6, 3)
    mask = N.causal_mask(4, 10, 6, 3)
    assert np.all(y[mask] == 0)
    want = N.softmax(np.where(mask, -np.inf, x).astype(np.float32), 0.5)  # the same row, unmasked keys only
    assert np.array_equal(y, np.where(mask, np.float32(0), want))


def test_the_sink_joins_the_max_and_the_denominator_unscaled():
    rng = np.random.default_rng(3)
    x = _scores(rng, (2, 3, 7))
    x[..., -1] = np.float32(5.0)  # a sink larger than every scaled score
    y = N.softmax(x, 0.125, True, 5, 0, False, True)
    s = x.astype(np.float64)
    s[..., :-1] *= np.float32(0.125)
    s[..., :-1] = np.where(N.causal_mask(3, 6, 5), -np.inf, s[..., :-1])
    want = np.exp(s - s.max(axis=-1, keepdims=True))
    want /= want.sum(axis=-1, keepdims=True)
    assert np.abs(y - want).max() < 1e-6
    assert np.all(y[..., :-1].sum(axis=-1) < 1 - 1e-3)  # the sink takes its share
    assert np.allclose(y.sum(axis=-1), 1, atol=1e-6)
