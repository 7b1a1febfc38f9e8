"""Expert-parallel load imbalance in stage time: every MoE layer is routed, the busiest device's
experts and the all-to-all rows it moves decide the layer."""

import numpy as np
import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.compiler import compile_graph
from opbsim.emulator.cluster import Cluster
from opbsim.emulator.engine import run
from opbsim.emulator.expert_load import alltoall_rows, busiest_groups, group_counts
from opbsim.emulator.stage_routed import group_experts_graph
from opbsim.emulator.stage_timer import Bucketing, StageTimer
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.workloads import (
    BalancedRouting,
    PrefillChunk,
    SkewRouting,
    Stage,
    TraceRouting,
    UniformRouting,
    expert_counts,
    get_preset,
)
from opbsim.workloads.parallel import Parallelism

from .helpers import TINY_MOE, cluster

EXACT = Bucketing(0)


def test_groups_hold_contiguous_experts_and_the_busiest_is_by_rows_or_by_experts_touched():
    counts = np.array([9, 0, 0, 0, 3, 3, 3, 0])
    assert group_counts(counts, 4).tolist() == [[9, 0], [0, 0], [3, 3], [3, 0]]
    assert busiest_groups(counts, 4) == (0, 2)  # 9 rows on 1 expert; 6 rows over 2 experts
    assert busiest_groups(np.array([9, 0, 4, 4]), 2) == (0, 1)  # 9 rows on one expert; 8 rows on two
    assert busiest_groups(np.array([4, 4, 4, 4]), 2) == (0,)


def test_an_all_to_all_moves_the_most_of_a_devices_send_share_and_the_busiest_groups_rows():
    # 8 devices, ep 8, tp 8: each device sends ceil(64 x 2 / 8) = 16 rows; balanced, each receives 16
    balanced = expert_counts(BalancedRouting(8, 2).route(0, 64), 8)
    assert alltoall_rows(balanced, 8, 1, 8, 64, 2) == 16
    hot = np.array([64, 64, 0, 0, 0, 0, 0, 0])  # every token to experts 0 and 1: device 0 and 1 get 64 rows
    assert alltoall_rows(hot, 8, 1, 8, 64, 2) == 64
    assert alltoall_rows(hot, 4, 2, 8, 64, 2) == 128  # ep 4 x etp 2: group 0 holds both hot experts


def _trace(rows_per_layer: dict) -> TraceRouting:
    return TraceRouting(TINY_MOE.num_experts, TINY_MOE.top_k, rows_per_layer)


def test_a_routing_with_the_balanced_counts_costs_what_balanced_routing_costs():
    cl = cluster(nodes=2)  # ep 2 across two nodes: experts exchanged
    stage = Stage.decode(8, 40)
    rr = _trace({layer: BalancedRouting(4, 2).route(0, 8) for layer in range(2)})
    a = StageTimer(TINY_MOE, cl, bucketing=EXACT).cost(stage)
    b = StageTimer(TINY_MOE, cl, routing=rr, bucketing=EXACT).cost(stage)
    assert b.time_s == pytest.approx(a.time_s, rel=1e-12)
    assert b.energy_J == pytest.approx(a.energy_J, rel=1e-12)


def test_a_hot_device_slows_an_expert_parallel_stage_by_its_experts_and_all_to_all_rows():
    """ep 2 over two nodes (dp 2: T/2 decode requests each): experts 0, 1 on device 0 and 2, 3 on device
    1. ``hot`` sends every token to experts 0 and 1 (device 0: 2T rows, device 1: none); ``spread`` sends
    half the tokens to 0, 2 and half to 1, 3 (T rows each). The difference per MoE layer is the busiest
    device's experts at (T, T) rows instead of (T/2, T/2), plus the dispatch and combine all-to-alls at
    2T rows on the busiest device instead of T (each device sends T/2 x top-2 = T rows)."""
    cl = cluster(nodes=2)
    T = 16
    stage = Stage.decode(T, 40)
    hot = _trace({layer: np.array([[0, 1]] * T) for layer in range(2)})
    spread = _trace({layer: np.array([[0, 2], [1, 3]] * (T // 2)) for layer in range(2)})
    t_hot = StageTimer(TINY_MOE, cl, routing=hot, bucketing=EXACT)
    t_spread = StageTimer(TINY_MOE, cl, routing=spread, bucketing=EXACT)
    slow, fast = t_hot.cost(stage).time_s, t_spread.cost(stage).time_s

    def experts_s(local):
        graph = group_experts_graph(t_hot, local)
        return run(compile_graph(graph, cl.fabric_device, cl.policy).program, cl.fabric_device).time_s

    group = Stage.decode(T // 2, 40)  # each node's half of the requests
    comm_hot = t_hot._exchange(group, T, np.array([T, T, 0, 0]))[0]
    comm_spread = t_hot._exchange(group, T, np.array([T // 2] * 4))[0]
    per_layer = experts_s((T, T)) - experts_s((T // 2, T // 2)) + comm_hot - comm_spread
    assert comm_hot > comm_spread and experts_s((T, T)) > experts_s((T // 2, T // 2))
    assert slow - fast == pytest.approx(2 * per_layer, rel=1e-9)  # two MoE layers


def test_without_expert_parallelism_concentrated_decode_is_faster_it_reads_fewer_experts_weights():
    cl = cluster(tp=2)  # ep 1, dp 1: every device holds half of every expert; no device is busier
    stage = Stage.decode(6, 40)
    hot = _trace({layer: np.array([[0, 1]] * 6) for layer in range(2)})  # 2 of 4 experts touched
    assert StageTimer(TINY_MOE, cl, routing=hot, bucketing=EXACT).cost(stage).time_s < \
        StageTimer(TINY_MOE, cl, bucketing=EXACT).cost(stage).time_s


def test_tensor_parallel_experts_over_data_parallel_groups_take_the_routed_counts():
    """ep 1, dp 2: every device holds half of every expert; the stage's routed counts decide, and two
    experts touched read half the weights of four."""
    cl = Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism(tp=1, dp=2, ep=1, etp=2),
                 node_devices=1)
    stage = Stage(prefill=(PrefillChunk(16), PrefillChunk(16)), decode_ctx_tokens=())
    hot = _trace({layer: np.array([[0, 1]] * 32) for layer in range(2)})
    spread = _trace({layer: np.array([[0, 2], [1, 3]] * 16) for layer in range(2)})
    assert StageTimer(TINY_MOE, cl, routing=hot, bucketing=EXACT).cost(stage).time_s < \
        StageTimer(TINY_MOE, cl, routing=spread, bucketing=EXACT).cost(stage).time_s


def test_two_batch_overlap_with_a_routing_of_balanced_counts_costs_what_balanced_overlap_costs():
    cl = cluster(nodes=2)
    stage = Stage.decode(16, 40)
    rr = _trace({layer: BalancedRouting(4, 2).route(0, 16) for layer in range(2)})
    a = StageTimer(TINY_MOE, cl, bucketing=EXACT, overlap=True).cost(stage)
    b = StageTimer(TINY_MOE, cl, routing=rr, bucketing=EXACT, overlap=True).cost(stage)
    assert b.time_s == pytest.approx(a.time_s, rel=1e-12)
    assert b.comm_exposed_s == pytest.approx(a.comm_exposed_s, rel=1e-12)


MIXTRAL = get_preset("mixtral-8x7b")
EP8 = Cluster(device=get_device("h100"), policy="xpu-only", parallel=Parallelism.of(tp=8, ep=8))
PREFILL = Stage(prefill=(PrefillChunk(4096),), decode_ctx_tokens=())


def test_skewed_routing_makes_a_mixtral_expert_parallel_prefill_slower_than_uniform_through_the_busiest_device():
    moe = [i for i in range(MIXTRAL.num_layers) if MIXTRAL.is_moe_layer(i)]
    uniform = StageTimer(MIXTRAL, EP8, routing=UniformRouting(8, 2, seed=0)).cost(PREFILL)
    skew = SkewRouting(8, 2, layers=moe, seed=0)
    skewed = StageTimer(MIXTRAL, EP8, routing=skew).cost(PREFILL)
    assert skewed.time_s > 1.15 * uniform.time_s
    # the mechanism: the busiest device's share of the routed rows, averaged over the layers
    again = SkewRouting(8, 2, layers=moe, seed=0)
    busiest = np.mean([expert_counts(again.route(layer, 4096), 8).max() / (4096 * 2 / 8) for layer in moe])
    assert busiest > 1.3  # the hottest expert gets 1.3x+ its fair share on average
    moe_s = dict(skewed.time_s_by_class)
    assert moe_s[max(moe_s, key=moe_s.get)] > 0


def test_a_full_size_model_with_the_default_skew_routes_every_moe_layer_once_per_shape():
    moe = [i for i in range(MIXTRAL.num_layers) if MIXTRAL.is_moe_layer(i)]
    skew = SkewRouting(8, 2, layers=moe, seed=0)
    timer = StageTimer(MIXTRAL, EP8, routing=skew)
    timer.cost(Stage.decode(32, 512))
    timer.cost(Stage.decode(32, 512))  # memoised: no second draw
    assert set(skew._cursor.values()) == {32}


def test_simulate_with_skew_or_a_trace_runs_across_nodes():
    base = ["simulate", "mixtral-8x7b", "-d", "h100", "--devices-per-node", "4", "--nodes", "2", "--batch", "4",
            "--lin", "64", "--lout", "4", "--requests", "4", "--json", "--no-progress"]
    for routing in ("skew", "skew:0.5,0.9", "trace:docs/examples/routing_trace.jsonl", "uniform"):
        result = CliRunner().invoke(cli, [*base, "--routing", routing])
        assert result.exit_code == 0, (routing, result.output)


def test_a_trace_for_another_model_is_refused_in_one_line():
    trace = _trace({0: np.array([[0, 1]])})
    with pytest.raises(InputError) as err:
        StageTimer(TINY_MOE, cluster(nodes=2), routing=trace)
    assert str(err.value) == "<trace>: no records for MoE layer 1 of tiny-moe (the trace has layers 0; " \
        "2 MoE layers expected)"
