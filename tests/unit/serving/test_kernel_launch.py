"""Kernel launches: decode stages replay CUDA graphs (vLLM's default), other stages are launched
kernel by kernel from the host, and a part whose kernels are shorter than their launches waits."""

from dataclasses import replace

import numpy as np
import pytest

from opbsim.compiler import compile_graph
from opbsim.emulator.engine import run
from opbsim.emulator.fleet import FleetConfig
from opbsim.emulator.fleet_run import simulate_fleet
from opbsim.emulator.serving import ServingConfig, graphed, simulate
from opbsim.emulator.serving_engines import CUDA_GRAPH_MAX_BATCH, EAGER_LAUNCH_US, get_serving_engine
from opbsim.emulator.stage_timer import Bucketing, StageCost, StageTimer
from opbsim.errors import InputError
from opbsim.isa.types import Unit
from opbsim.workloads import FixedLengths, PrefillChunk, Stage, build_model, closed_loop
from opbsim.workloads.traces import Trace

from .helpers import TINY_DENSE, ScriptedTimer, cluster


def test_only_decode_stages_of_at_most_the_captured_batch_replay_a_graph():
    chunk = (PrefillChunk(16),)
    assert graphed(True, (), 1) and graphed(True, (), CUDA_GRAPH_MAX_BATCH)
    assert not graphed(True, (), CUDA_GRAPH_MAX_BATCH + 1)  # vLLM captures decode batches up to 256
    assert not graphed(True, chunk, 4)  # prefill runs eagerly
    assert not graphed(False, (), 4)  # --eager


def test_the_engine_counts_the_kernels_each_unit_launches():
    cl = cluster()
    program = compile_graph(build_model(TINY_DENSE, Stage.decode(2, 8)), cl.device, "xpu-only").program
    main = program.instructions[:next(i for i, inst in enumerate(program.instructions) if inst.mnemonic == "halt")]
    kernels = dict(run(program, cl.device).kernels_by_unit)
    # a launch is one kernel, its body none; every other instruction that does work is a kernel of its own
    assert sum(kernels.values()) == sum(1 for inst in main if inst.mnemonic not in ("wait", "signal"))
    assert kernels[Unit.XPU] >= sum(1 for inst in main if inst.mnemonic == "launch") > 0


def test_a_part_whose_kernels_outrun_their_host_launches_waits_for_the_host():
    cl = cluster()
    stage = Stage.decode(2, 8)
    timer = StageTimer(TINY_DENSE, cl, bucketing=Bucketing(0))
    cost = timer.cost(stage)
    assert cost.eager_extra_s > 0  # the tiny model's kernels take far less than 5 us each
    kernels = 0
    for graph, times in timer.parts(stage):
        stats = run(compile_graph(graph, cl.device, "xpu-only").program, cl.device)
        kernels += dict(stats.kernels_by_unit).get(Unit.XPU, 0) * times
    assert cost.time_s + cost.eager_extra_s == pytest.approx(kernels * EAGER_LAUNCH_US * 1e-6, rel=1e-9)
    slow = StageTimer(TINY_DENSE, cl, bucketing=Bucketing(0), host_launch_s=0.0).cost(stage)
    assert slow.eager_extra_s == 0.0 and slow.time_s == cost.time_s


def test_a_large_part_hides_its_launches_behind_its_kernels():
    big = replace(TINY_DENSE, hidden_size=4096, num_heads=32, num_kv_heads=8, head_dim=128, dense_ffn=14336,
                  vocab_size=32000)
    cost = StageTimer(big, cluster(), bucketing=Bucketing(0)).cost(Stage(prefill=(PrefillChunk(2048),)))
    assert cost.eager_extra_s == 0.0


def _serve(cuda_graphs: bool, seconds=lambda stage: 1.0, extra_s: float = 0.5):
    cl = cluster()

    class Timer(ScriptedTimer):
        def cost(self, stage):
            return replace(super().cost(stage), eager_extra_s=extra_s)

    timer = Timer(TINY_DENSE, cl, seconds)
    config = ServingConfig(batch=2, cuda_graphs=cuda_graphs)
    return simulate(TINY_DENSE, cl, closed_loop(2, FixedLengths(4, 3), num_requests=2, seed=0), config, timer=timer)


def test_with_graphs_only_the_prefill_stage_pays_its_eager_launches_and_without_every_stage():
    # 2 requests of 4 prompt / 3 output tokens at once: a prefill stage and two decode stages of 1 s
    graphs, eager = _serve(True), _serve(False)
    assert graphs.stage_time_s == (1.5, 1.0, 1.0)
    assert eager.stage_time_s == (1.5, 1.5, 1.5)
    assert dict(eager.time_share_by_class)["host"] == pytest.approx(1.5 / 4.5)  # devices idle, waiting for the host
    assert eager.energy_J > graphs.energy_J  # static power while they wait


def test_a_replica_run_pays_the_same_launches_as_one_replica_simulated():
    cl = cluster()
    trace = Trace(arrival_s=np.zeros(2), input_tokens=np.full(2, 4), output_tokens=np.full(2, 3), source="test")
    for graphs in (True, False):
        timer = StageTimer(TINY_DENSE, cl, bucketing=Bucketing(0))
        fleet = simulate_fleet(TINY_DENSE, cl, trace, FleetConfig(replicas=1, batch=2, buckets=0, cuda_graphs=graphs),
                               timer=timer)
        one = simulate(TINY_DENSE, cl, closed_loop(2, FixedLengths(4, 3), num_requests=2, seed=0),
                       ServingConfig(batch=2, cuda_graphs=graphs), timer=timer)
        assert fleet.duration_s == pytest.approx(one.duration_s, rel=1e-12)
        assert fleet.energy_J == pytest.approx(one.energy_J, rel=1e-9)


def test_vllm_replays_graphs_and_tensorrt_llm_s_session_benchmark_does_not():
    assert get_serving_engine("vllm-pre-0.6").cuda_graphs and get_serving_engine("vllm-v1").cuda_graphs
    assert not get_serving_engine("trtllm").cuda_graphs


def test_a_launch_mode_that_is_not_a_flag_is_one_line():
    with pytest.raises(InputError, match=r"^cuda_graphs must be true or false, got 'yes'$"):
        ServingConfig(batch=1, cuda_graphs="yes")
    with pytest.raises(InputError, match=r"^cuda_graphs must be true or false, got 1$"):
        FleetConfig(replicas=1, batch=1, cuda_graphs=1)
    with pytest.raises(InputError, match=r"^host_launch_s must be a finite number >= 0, got -1.0$"):
        StageTimer(TINY_DENSE, cluster(), host_launch_s=-1.0)
    assert isinstance(StageCost(time_s=1.0, energy_J=1.0, busy_s_by_unit=(), time_s_by_class=()).eager_extra_s, float)
