"""Expert routing: balanced, uniform and Zipf; seeded and reproducible (traces: test_routing_trace.py,
the skew model: test_routing_skew.py)."""

import numpy as np
import pytest

from opbsim.errors import InputError
from opbsim.workloads import (
    BalancedRouting,
    UniformRouting,
    ZipfRouting,
    expected_fraction_touched,
    expert_counts,
)


def touched(assignment: np.ndarray, num_experts: int) -> float:
    return np.count_nonzero(expert_counts(assignment, num_experts)) / num_experts


def test_the_expected_fraction_of_experts_touched_is_one_minus_the_chance_all_tokens_miss():
    assert expected_fraction_touched(64, 2, 32) == pytest.approx(1 - (1 - 2 / 64) ** 32)  # GLaM, batch 32: 0.638
    assert expected_fraction_touched(8, 2, 1) == pytest.approx(2 / 8)  # one token touches exactly top-k
    assert expected_fraction_touched(8, 2, 64) == pytest.approx(1.0, abs=1e-7)


@pytest.mark.parametrize("experts, top_k, batch", [(64, 2, 32), (8, 2, 4), (64, 8, 4), (60, 4, 16)])
def test_uniform_routing_touches_the_expected_fraction_of_experts(experts, top_k, batch):
    routing = UniformRouting(experts, top_k, seed=7)
    stages = [touched(routing.route(0, batch), experts) for _ in range(400)]
    expected = 1 - (1 - top_k / experts) ** batch
    assert np.mean(stages) == pytest.approx(expected, abs=0.015)


def test_uniform_routing_sends_each_token_to_top_k_distinct_experts_with_mean_b_k_over_e_each():
    routing = UniformRouting(64, 2, seed=3)
    rows = routing.route(0, 20000)
    assert rows.shape == (20000, 2) and rows.dtype == np.int32
    assert (rows[:, 0] != rows[:, 1]).all()
    counts = expert_counts(rows, 64)
    assert counts.sum() == 20000 * 2
    assert counts.mean() == 20000 * 2 / 64
    assert counts.std() / counts.mean() < 0.05  # binomial spread: sqrt(625 * 31/32) / 625 = 0.04


def test_the_same_seed_routes_the_same_and_layers_are_independent_streams():
    a, b = UniformRouting(8, 2, seed=11), UniformRouting(8, 2, seed=11)
    first = a.route(3, 50)
    b.route(0, 1000)  # another layer's calls do not shift layer 3
    assert np.array_equal(first, b.route(3, 50))
    assert not np.array_equal(first, UniformRouting(8, 2, seed=12).route(3, 50))
    assert not np.array_equal(a.route(3, 50), first)  # the stream moves on


def test_zipf_routing_gives_the_hottest_expert_its_share_of_the_harmonic_weights():
    E, skew, T = 8, 1.0, 40000
    counts = expert_counts(ZipfRouting(E, 1, skew=skew, seed=5).route(0, T), E)
    harmonic = sum((r + 1) ** -skew for r in range(E))  # 2.718 for E = 8, s = 1
    assert counts.max() / T == pytest.approx(1 / harmonic, abs=0.01)  # rank 0: weight 1 of 2.718
    assert sorted(counts / T)[0] == pytest.approx(1 / 8 / harmonic, abs=0.005)  # rank 7: weight 1/8


def test_zipf_routing_touches_fewer_experts_than_uniform():
    zipf = np.mean([touched(ZipfRouting(64, 2, skew=1.5, seed=1).route(i, 32), 64) for i in range(100)])
    uniform = np.mean([touched(UniformRouting(64, 2, seed=1).route(i, 32), 64) for i in range(100)])
    assert zipf < uniform - 0.1


def test_zipf_layers_rank_their_experts_differently():
    routing = ZipfRouting(16, 1, skew=2.0, seed=9)
    hottest = {int(np.argmax(expert_counts(routing.route(layer, 2000), 16))) for layer in range(8)}
    assert len(hottest) > 1


def test_balanced_routing_is_round_robin():
    rows = BalancedRouting(8, 2).route(0, 5)
    assert rows.tolist() == [[0, 1], [2, 3], [4, 5], [6, 7], [0, 1]]
    assert expert_counts(BalancedRouting(64, 6).route(0, 3), 64).tolist() == [1] * 18 + [0] * 46  # 3 x 6 slots


@pytest.mark.parametrize("make, message", [
    (lambda: UniformRouting(0, 1, seed=0), "num_experts must be a positive integer, got 0"),
    (lambda: UniformRouting(8, 9, seed=0), "top_k must be in 1..num_experts (8), got 9"),
    (lambda: ZipfRouting(8, 2, skew=-1, seed=0), "skew must be a number in 0..100, got -1"),
    (lambda: ZipfRouting(8, 2, skew=float("inf"), seed=0), "skew must be a number in 0..100, got inf"),
    (lambda: ZipfRouting(8, 2, skew=1e308, seed=0), "skew must be a number in 0..100, got 1e+308"),
])
def test_bad_routing_parameters_are_rejected_with_exact_messages(make, message):
    with pytest.raises(InputError) as err:
        make()
    assert str(err.value) == message
