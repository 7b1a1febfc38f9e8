"""A cluster of replicas behind a router: one replica is serving.py's open loop, the router's
capacity contract, fan-out identical to one process, routing policies and metrics."""

import numpy as np
import pytest

from opbsim.emulator.fleet import FleetConfig
from opbsim.emulator.fleet_run import simulate_fleet
from opbsim.emulator.router import ROUTERS, router_policy, static_assignment
from opbsim.emulator.serving import ServingConfig, simulate
from opbsim.emulator.stage_timer import StageTimer
from opbsim.errors import InputError
from opbsim.workloads import GaussianLengths, open_loop
from opbsim.workloads.traces import Trace, poisson_trace

from .helpers import TINY_MOE, cluster

LENGTHS = GaussianLengths(48.0, 16.0, 12.0, 4.0)
SAME = ("tokens_per_s", "tbt_p50_ms", "tbt_p90_ms", "tbt_p99_ms", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms",
        "e2e_p50_s", "e2e_p99_s", "duration_s", "output_tokens", "stages")


def fleet(trace, **kw):
    kw = {"replicas": 1, "batch": 4, "prefill_chunk_tokens": 32, **kw}
    return simulate_fleet(TINY_MOE, cluster(), trace, FleetConfig(**kw))


@pytest.mark.parametrize("router", list(ROUTERS))
def test_one_replica_behind_any_router_serves_exactly_as_the_open_loop_of_serving_py(router):
    # A rate far above what batch 4 sustains, so that requests wait at the router.
    scenario = open_loop(5000.0, LENGTHS, num_requests=60, seed=3)
    cl = cluster()
    ref = simulate(TINY_MOE, cl, scenario, ServingConfig(batch=4, prefill_chunk_tokens=32),
                   timer=StageTimer(TINY_MOE, cl))
    got = fleet(poisson_trace(5000.0, LENGTHS, num_requests=60, seed=3), router=router)
    for name in SAME:
        assert getattr(got, name) == getattr(ref, name), name
    assert got.energy_per_token_mJ == pytest.approx(ref.energy_per_token_mJ, rel=1e-12)  # summed in another order


@pytest.mark.parametrize("router", list(ROUTERS))
def test_a_router_never_sends_a_request_to_a_replica_without_capacity(router):
    sends = []
    trace = poisson_trace(20000.0, LENGTHS, num_requests=200, seed=1)
    cfg = FleetConfig(replicas=3, batch=4, prefill_chunk_tokens=32, router=router)
    result = simulate_fleet(TINY_MOE, cluster(), trace, cfg, on_dispatch=lambda r, k, occ, t: sends.append((r, occ)))
    assert max(occ for _, occ in sends) == 3  # replicas fill up: occupancy 3 is below the limit of 4
    assert all(occ < 4 for _, occ in sends)
    assert sorted(r for r, _ in sends) == list(range(200))  # every request sent exactly once
    assert sum(p.requests for p in result.per_replica) == 200


@pytest.mark.slow
@pytest.mark.parametrize("router", ["round-robin", "random"])
def test_fanned_out_replicas_give_the_result_of_one_process(router):
    trace = poisson_trace(3000.0, LENGTHS, num_requests=120, seed=2)
    one = fleet(trace, replicas=4, router=router, seed=5)
    two = fleet(trace, replicas=4, router=router, seed=5, workers=2)
    a, b = one.summary(), two.summary()
    a.pop("compiled_shapes"), b.pop("compiled_shapes")  # each process compiles its own shapes
    assert a == b


def test_static_routers_in_one_event_loop_match_replicas_run_alone():
    trace = poisson_trace(3000.0, LENGTHS, num_requests=90, seed=4)
    together = fleet(trace, replicas=3, router="round-robin")
    for k in range(3):
        alone = fleet(trace.take(np.arange(k, 90, 3)))
        assert together.per_replica[k].ttft_p99_ms == alone.ttft_p99_ms
        assert together.per_replica[k].stages == alone.stages


def test_round_robin_assigns_request_i_to_replica_i_mod_n_and_random_is_seeded():
    assert static_assignment(router_policy("round-robin"), 7, 3, 0).tolist() == [0, 1, 2, 0, 1, 2, 0]
    a = static_assignment(router_policy("random"), 1000, 4, 9)
    assert a.tolist() == static_assignment(router_policy("random"), 1000, 4, 9).tolist()
    assert set(a.tolist()) == {0, 1, 2, 3}
    with pytest.raises(InputError, match="^router least-kv chooses at run time; it has no static assignment$"):
        static_assignment(router_policy("least-kv"), 3, 2, 0)


def test_least_outstanding_spreads_a_burst_over_idle_replicas():
    # 8 requests at time 0 on 4 replicas: each replica gets two.
    trace = Trace(np.zeros(8), np.full(8, 16), np.full(8, 4))
    result = fleet(trace, replicas=4, router="least-outstanding")
    assert [p.requests for p in result.per_replica] == [2, 2, 2, 2]


def test_least_kv_sends_to_the_replica_holding_the_fewest_kv_tokens():
    # A long prompt lands on replica 0; the next two short ones both go to replica 1 (16 + 16 < 400).
    trace = Trace(np.array([0.0, 1e-9, 2e-9]), np.array([400, 16, 16]), np.array([4, 4, 4]))
    result = fleet(trace, replicas=2, router="least-kv", batch=8)
    assert [p.requests for p in result.per_replica] == [1, 2]


def test_tpot_is_the_time_between_a_requests_first_and_last_tokens_per_later_token():
    trace = Trace(np.array([0.0]), np.array([16]), np.array([5]))
    r = fleet(trace)
    assert r.tpot_p50_ms == pytest.approx(r.tbt_p50_ms)  # one request alone: every decode stage the same shape
    assert r.e2e_p50_s == pytest.approx(r.ttft_p50_ms / 1e3 + 4 * r.tpot_p50_ms / 1e3)


@pytest.mark.parametrize("kw, message", [
    ({"replicas": 0}, "^replicas must be a positive integer, got 0$"),
    ({"router": "nearest"}, "^unknown router 'nearest'; expected one of round-robin, random, least-outstanding, "
                            "least-kv$"),
    ({"workers": 0}, "^workers must be a positive integer, got 0$"),
])
def test_a_bad_fleet_configuration_is_one_line(kw, message):
    with pytest.raises(InputError, match=message):
        FleetConfig(**{"replicas": 1, "batch": 1, **kw})


def test_a_replica_that_cannot_hold_the_weights_is_an_input_error():
    trace = Trace(np.array([0.0]), np.array([16]), np.array([2]))
    with pytest.raises(InputError, match="^does not fit: tiny-moe needs"):
        simulate_fleet(TINY_MOE, cluster(hbm_B=1024), trace, FleetConfig(replicas=1, batch=1))


@pytest.mark.parametrize("router", list(ROUTERS))
def test_collapsing_runs_of_decode_stages_gives_the_stage_by_stage_result(router):
    trace = poisson_trace(400.0, GaussianLengths(48.0, 16.0, 40.0, 12.0), num_requests=150, seed=6)
    fast = fleet(trace, replicas=3, router=router, batch=8)
    slow = fleet(trace, replicas=3, router=router, batch=8, collapse=False)
    assert fast.summary() == slow.summary()


@pytest.mark.slow
def test_replicas_on_a_dask_cluster_give_the_result_of_one_process():
    distributed = pytest.importorskip("dask.distributed")
    trace = poisson_trace(3000.0, LENGTHS, num_requests=60, seed=8)
    one = fleet(trace, replicas=3)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc:
        dask = fleet(trace, replicas=3, scheduler=lc.scheduler_address)
    a, b = one.summary(), dask.summary()
    a.pop("compiled_shapes"), b.pop("compiled_shapes")
    assert a == b
