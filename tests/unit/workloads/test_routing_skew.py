"""The skew model: Dirichlet expert popularity per layer, inter-layer affinity, seeded paths."""

import numpy as np
import pytest

from opbsim.errors import InputError
from opbsim.workloads import SkewRouting, expert_counts
from opbsim.workloads.routing_skew import (
    BLOCK_TOKENS,
    DEFAULT_CONCENTRATION,
    DEFAULT_CORRELATION,
    parse_skew,
    share_cv,
)


def test_the_same_seed_gives_the_same_paths_whatever_order_layers_are_routed_in():
    a = SkewRouting(16, 2, layers=range(6), seed=4)
    b = SkewRouting(16, 2, layers=range(6), seed=4)
    forward = [a.route(layer, 700) for layer in range(6)]
    backward = {layer: b.route(layer, 700) for layer in reversed(range(6))}
    assert all(np.array_equal(forward[layer], backward[layer]) for layer in range(6))
    assert not np.array_equal(forward[3], SkewRouting(16, 2, layers=range(6), seed=5).route(3, 700))


def test_a_layer_stream_continues_across_calls_and_blocks():
    whole = SkewRouting(8, 2, layers=[0, 1], seed=1).route(1, 3 * BLOCK_TOKENS)
    r = SkewRouting(8, 2, layers=[0, 1], seed=1)
    pieces = np.concatenate([r.route(1, n) for n in (5, BLOCK_TOKENS, 2 * BLOCK_TOKENS - 5)])
    assert np.array_equal(whole, pieces)


def test_rows_are_top_k_distinct_expert_ids():
    rows = SkewRouting(64, 6, layers=range(4), concentration=0.3, seed=2).route(3, 2000)
    assert rows.shape == (2000, 6) and rows.dtype == np.int32
    assert rows.min() >= 0 and rows.max() < 64
    assert (np.diff(np.sort(rows, axis=1), axis=1) > 0).all()


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_each_layers_load_follows_its_own_popularity_whatever_the_correlation(rho):
    r = SkewRouting(8, 1, layers=range(5), correlation=rho, seed=3)  # top-1: the share is the popularity
    for layer in range(5):
        got = expert_counts(r.route(layer, 40000), 8) / 40000
        assert got == pytest.approx(r.popularity[layer], abs=0.01)


def test_the_popularity_spread_matches_the_dirichlet_coefficient_of_variation():
    for alpha in (0.5, 2.0, 8.0):
        r = SkewRouting(16, 1, layers=range(400), concentration=alpha, seed=0)
        cv = (r.popularity.std(axis=1) * 16).mean()  # per layer: std of the shares / their mean 1/16
        # E[sample std] sits a little under the population value sqrt((E-1)/(E alpha+1)) (16 samples a layer)
        assert cv == pytest.approx(share_cv(16, alpha), rel=0.1)


def test_a_very_large_concentration_is_uniform_routing():
    r = SkewRouting(8, 2, layers=[0], concentration=1e6, seed=0)
    assert r.popularity[0] == pytest.approx(np.full(8, 1 / 8), rel=0.01)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9, 1.0])
def test_with_even_popularity_the_share_of_tokens_that_follow_their_affinity_partner_is_rho_plus_chance(rho):
    r = SkewRouting(16, 1, layers=range(3), concentration=1e6, correlation=rho, seed=7)
    t = 30000
    prev, nxt = r.route(1, t)[:, 0], r.route(2, t)[:, 0]
    followed = np.mean(nxt == r.affinity[2][prev])
    assert followed == pytest.approx(rho + (1 - rho) / 16, abs=0.01)  # a fresh draw lands on the partner 1 in 16


def test_with_skewed_popularity_correlation_still_ties_a_tokens_experts_to_its_previous_ones():
    def followed(rho):
        r = SkewRouting(16, 2, layers=range(2), concentration=2.0, correlation=rho, seed=2)
        prev, nxt = r.route(0, 20000), r.route(1, 20000)
        return np.mean(np.sort(nxt, axis=1) == np.sort(r.affinity[1][prev], axis=1))

    assert followed(0.9) > followed(0.5) + 0.1 > followed(0.0) + 0.25  # measured: 0.40, 0.26, 0.08


def test_the_defaults_and_the_option_syntax():
    assert parse_skew("skew") == (DEFAULT_CONCENTRATION, DEFAULT_CORRELATION) == (2.0, 0.5)
    assert parse_skew("skew:0.7") == (0.7, DEFAULT_CORRELATION)
    assert parse_skew("skew:4,0.9") == (4.0, 0.9)
    assert share_cv(8, 2.0) == pytest.approx((7 / 17) ** 0.5)  # 0.64
    assert share_cv(256, 2.0) == pytest.approx((255 / 513) ** 0.5)  # 0.71


@pytest.mark.parametrize("spec, message", [
    ("skew:", "--routing skew:: expected skew, skew:CONCENTRATION or skew:CONCENTRATION,CORRELATION"),
    ("skew:1,2,3", "--routing skew:1,2,3: expected skew, skew:CONCENTRATION or skew:CONCENTRATION,CORRELATION"),
    ("skew:x", "--routing skew:x: the concentration and correlation must be numbers"),
])
def test_a_bad_skew_option_is_one_line(spec, message):
    with pytest.raises(InputError) as err:
        parse_skew(spec)
    assert str(err.value) == message


@pytest.mark.parametrize("kwargs, message", [
    ({"concentration": 0.0}, "concentration must be a number in (0, 1e+06], got 0.0"),
    ({"concentration": float("nan")}, "concentration must be a number in (0, 1e+06], got nan"),
    ({"correlation": 1.5}, "correlation must be a number in 0..1, got 1.5"),
    ({"layers": []}, "layers must be distinct integers >= 0, got ()"),
    ({"layers": [0, 0]}, "layers must be distinct integers >= 0, got (0, 0)"),
    ({"seed": -1}, "seed must be an integer >= 0, got -1"),
])
def test_bad_skew_parameters_are_rejected_with_exact_messages(kwargs, message):
    args = {"layers": range(2), "seed": 0, **kwargs}
    with pytest.raises(InputError) as err:
        SkewRouting(8, 2, **args)
    assert str(err.value) == message


def test_routing_a_layer_outside_the_chain_is_an_error():
    with pytest.raises(InputError) as err:
        SkewRouting(8, 2, layers=[1, 2, 3], seed=0).route(0, 4)
    assert str(err.value) == "skew routing covers layers 1..3 (3 MoE layers); layer 0 is not one of them"
