"""Stage costs: compiled per layer kind and memoised by shape bucket, checked against whole-model runs."""

from dataclasses import replace

import pytest

from opbsim.compiler import compile_graph
from opbsim.emulator.engine import run
from opbsim.emulator.serving import ServingConfig, simulate
from opbsim.emulator.stage_timer import Bucketing, StageTimer, split_by_class
from opbsim.emulator.time_split import launch_class_shares, modelled_s
from opbsim.errors import InputError
from opbsim.hardware.collectives import Collective, plan
from opbsim.workloads import (
    GaussianLengths,
    PrefillChunk,
    Stage,
    UniformRouting,
    build_model,
    closed_loop,
)
from opbsim.workloads.ops import OpClass

from .helpers import TINY_MOE, cluster

TINY_MOE_4 = replace(TINY_MOE, num_layers=4)


def flat(summary: dict) -> dict:
    """Numbers of a summary, nested dictionaries flattened (sums in another order differ in the last bits)."""
    out = {}
    for k, v in summary.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        elif not isinstance(v, str):
            out[k] = v
    return out


def test_buckets_round_to_eight_steps_per_power_of_two():
    b = Bucketing(8)
    assert [b.round(n) for n in (0, 1, 8, 9, 17, 1024, 1087, 1088, 1500)] == [0, 1, 8, 9, 18, 1024, 1024, 1152, 1536]
    # 1500: octave 1024..2047 has steps of 1024 / 8 = 128; 1500 / 128 = 11.7 -> 12 x 128
    assert Bucketing(0).round(1500) == 1500


def test_a_bucket_holds_the_decode_requests_at_their_rounded_mean_context_and_sorted_rounded_chunks():
    stage = Stage(prefill=(PrefillChunk(100), PrefillChunk(300, 17, final=False)), decode_ctx_tokens=(1000, 1100, 2002))
    # 300 -> 9 x 32, 17 -> 9 x 2, 100 -> 13 x 8 (12.5 rounds up); mean context 1367.3 -> 11 x 128
    assert Bucketing(8).stage(stage) == Stage(prefill=(PrefillChunk(288, 18, final=False), PrefillChunk(104)),
                                              decode_ctx_tokens=(1408,) * 3)
    assert Bucketing(0).stage(stage) is stage


MIXED = Stage(prefill=(PrefillChunk(24, 8),), decode_ctx_tokens=(30,) * 5)


@pytest.mark.parametrize("device, policy", [("duplex", "duplex"), ("h100", "xpu-only"), ("bank-pim", "bank-pim")])
@pytest.mark.parametrize("stage", [Stage.decode(6, 40), MIXED], ids=["decode", "mixed"])
def test_summing_one_compiled_layer_per_kind_matches_compiling_the_whole_model(device, policy, stage):
    cl = cluster(device, policy, tp=2)
    whole = run(compile_graph(build_model(TINY_MOE_4, stage, tp=2), cl.device, policy).program, cl.device)
    cost = StageTimer(TINY_MOE_4, cl, bucketing=Bucketing(0)).cost(stage)
    assert cost.time_s == pytest.approx(whole.time_s, rel=0.03)  # only the overlap across layers differs
    assert cost.time_s >= whole.time_s  # layers run back to back: never faster than the whole program
    # energy adds up over 2 devices, but for layer 0, which has no residual add and is counted as the representative
    # layer 1, which has: 0.5% (decode) to 1.5% (mixed) of this 4-layer model, a quarter of that with 32 layers
    assert cost.energy_J == pytest.approx(2 * whole.energy_J, rel=0.02)
    assert sum(t for _, t in cost.time_s_by_class) == pytest.approx(cost.time_s)


def test_a_memoised_run_equals_a_run_that_compiles_every_stage_afresh():
    cl = cluster("duplex", "duplex", tp=2)
    scenario = closed_loop(3, GaussianLengths(24, 6, 5, 2), num_requests=6, seed=3)
    config = ServingConfig(batch=3)
    memo = StageTimer(TINY_MOE, cl, bucketing=Bucketing(2))
    fresh = StageTimer(TINY_MOE, cl, bucketing=Bucketing(2), memo=False)
    a, b = simulate(TINY_MOE, cl, scenario, config, timer=memo), simulate(TINY_MOE, cl, scenario, config, timer=fresh)
    assert a.stage_time_s == b.stage_time_s
    assert flat(a.summary()) == pytest.approx(flat({**b.summary(), "compiled_shapes": a.compiled_shapes}), rel=1e-12)
    assert a.compiled_shapes < b.compiled_shapes == b.stages  # the memo compiled each distinct stage once


def test_a_run_is_deterministic_for_a_seed_with_uniform_routing():
    cl = cluster("duplex", "duplex")
    scenario = closed_loop(2, GaussianLengths(20, 5, 4, 1), num_requests=4, seed=1)

    def once():
        timer = StageTimer(TINY_MOE, cl, routing=UniformRouting(4, 2, seed=9))
        return simulate(TINY_MOE, cl, scenario, ServingConfig(batch=2), timer=timer)

    assert once() == once()


def test_the_class_split_shares_each_moment_among_the_instructions_running_then():
    cl = cluster("duplex", "duplex")
    graph = build_model(TINY_MOE, Stage.decode(4, 32))
    compiled = compile_graph(graph, cl.device, "duplex")
    stats = run(compiled.program, cl.device)
    classes = {op.name: op.op_class for op in graph.ops}
    split = split_by_class(stats, {i: classes[n] for i, n in enumerate(compiled.op_of) if n})
    assert sum(split.values()) == pytest.approx(stats.time_s)
    assert split[OpClass.ATTENTION] > 0 and split[OpClass.MOE] > 0 and split[OpClass.FC] > 0


def test_a_fused_dataflow_kernel_splits_its_time_over_its_ops_classes_by_their_modelled_time():
    cl = cluster("sn40l", "sn40l")
    graph = build_model(TINY_MOE, Stage.decode(4, 32))
    compiled = compile_graph(graph, cl.device, "sn40l")
    program = compiled.program
    stats = run(program, cl.device)
    classes = {op.name: op.op_class for op in graph.ops}
    by_index = {i: classes[n] for i, n in enumerate(compiled.op_of) if n in classes}
    shares = launch_class_shares(program, cl.device, by_index)
    fused = [i for i, s in shares.items() if len(s) > 1]
    assert fused, "the sn40l policy fuses the attention block into one kernel"
    launch = program.instructions[fused[0]]
    body = range(int(launch["body"]), int(launch["body"]) + int(launch["count"]))
    attention_s = sum(max(modelled_s(program, cl.device, program.instructions[j])) for j in body
                      if by_index.get(j) is OpClass.ATTENTION)
    body_s = sum(max(modelled_s(program, cl.device, program.instructions[j])) for j in body)
    assert shares[fused[0]][OpClass.ATTENTION] == pytest.approx(attention_s / body_s)
    assert sum(shares[fused[0]].values()) == pytest.approx(1.0)
    unsplit, split = split_by_class(stats, by_index), split_by_class(stats, by_index, shares)
    assert sum(split.values()) == pytest.approx(stats.time_s)
    assert unsplit[OpClass.ATTENTION] == 0 and unsplit[OpClass.MOE] == 0  # every kernel counted as other
    assert split[OpClass.ATTENTION] > 0 and split[OpClass.FC] > 0 and split[OpClass.MOE] > split[OpClass.OTHER]


def test_expert_parallelism_across_nodes_adds_two_all_to_alls_and_an_all_gather_per_moe_layer():
    stage = Stage.decode(8, 32)
    c = cluster("duplex", "duplex", tp=2, nodes=2)
    cost = StageTimer(TINY_MOE, c, bucketing=Bucketing(0)).cost(stage)
    group_tokens, row_B = 4, 64 * 2  # 8 decode requests over 2 groups; bf16 rows of 64
    ic = c.fabric_device.interconnect  # nodes of 2: the all-to-all over 4 devices spans 2 nodes
    send_B = group_tokens * 2 // 2 * 2 * row_B  # top-2 rows split over tp = 2, each to etp = 2 devices
    a2a = plan(ic, Collective.ALLTOALL, send_B, 4).time_s
    gather = plan(ic, Collective.ALLGATHER, group_tokens * row_B, 2).time_s
    exchange = TINY_MOE.num_layers * (2 * a2a + gather)
    assert cost.comm_exposed_s >= exchange
    assert dict(cost.time_s_by_class)[OpClass.COMM] >= exchange


def _with_and_without_overlap(stage: Stage, model=TINY_MOE):
    c = cluster("duplex", "duplex", tp=2, nodes=2)
    return (StageTimer(model, c, bucketing=Bucketing(0)).cost(stage),
            StageTimer(model, c, bucketing=Bucketing(0), overlap=True).cost(stage))


def test_two_batch_overlap_hides_a_bandwidth_bound_exchange_behind_the_other_half_batch():
    # experts wide enough that a half batch's compute outlasts its exchange (the attention of the tiny
    # model no longer does: the GPU's fused attention keeps its scores on chip)
    wide = replace(TINY_MOE, expert_ffn=4096)
    plain, tbo = _with_and_without_overlap(Stage(prefill=(PrefillChunk(8192), PrefillChunk(8192))), wide)
    assert tbo.comm_exposed_s < plain.comm_exposed_s / 4
    assert tbo.time_s < plain.time_s


def test_two_batch_overlap_slows_a_latency_bound_exchange_it_pays_every_collective_twice():
    plain, tbo = _with_and_without_overlap(Stage.decode(64, 256))
    assert tbo.time_s > plain.time_s


def test_the_lowerings_a_model_lacks_are_named_by_the_compiler(monkeypatch):
    import opbsim.emulator.stage_timer as stage_timer

    def compile_without_experts(graph, device, policy):
        if any(op.name.endswith(".expert.0") for op in graph.ops):
            raise InputError("L1.expert.0: the gelu FFN is not lowered yet")
        return compile_graph(graph, device, policy)

    assert StageTimer(TINY_MOE, cluster()).lowering_errors(Stage.decode(1, 16)) == ()
    monkeypatch.setattr(stage_timer, "compile_graph", compile_without_experts)
    errors = StageTimer(TINY_MOE, cluster()).lowering_errors(Stage.decode(1, 16))
    assert errors == ("L1.expert.0: the gelu FFN is not lowered yet",)  # the prologue/epilogue compiled
    with pytest.raises(InputError, match="the gelu FFN is not lowered yet"):
        StageTimer(TINY_MOE, cluster()).cost(Stage.decode(1, 16))
