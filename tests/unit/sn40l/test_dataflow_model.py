"""The dataflow kernel model: unit shares, tiles, fill and drain, launch, and the roofline."""

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.emulator.devices import kernel_stages
from opbsim.emulator.engine import run
from opbsim.emulator.work import roofline_bound_s, work_of
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.hardware.device_models.dataflow import DataflowModel, plan_kernel, share_units
from opbsim.hardware.device_models.gpu import GPU
from opbsim.isa import assemble
from opbsim.isa.types import Space

SN40L = get_device("sn40l")
DF = SN40L.model.params


def kernel(body: str, decl: str, *, pcus=1040, pmus=1040, hw=1, sync=0):
    count = len([ln for ln in body.splitlines() if ln.strip()])
    return assemble(f"{decl}launch.pcu k, count={count}, pcus={pcus}, pmus={pmus}, hw={hw}, sync={sync}\nhalt\n"
                    f"k:\n{body}")


def plan_of(program, device=SN40L):
    launch = program.instructions[0]
    works = [work_of(program, i) for i in program.instructions[2:]]
    return plan_kernel(device, launch, kernel_stages(device, launch, works))


GEMV = (".desc x hbm 0 bf16 [1, 4096]\n.desc w hbm 65536 bf16 [4096, 4096]\n.desc y sram 0 bf16 [1, 4096]\n"
        ".desc z hbm 40000000 bf16 [1, 4096]\n")
GEMV_BODY = "  gemm.pcu y, x, w\n  silu.pcu z, y\n"


def test_units_are_shared_in_proportion_with_one_to_every_stage_that_needs_any():
    assert share_units([3.0, 1.0], 8, "pcus") == (6, 2)  # 1 each, then 6 spare as 4.5 and 1.5: largest remainder
    assert share_units([1.0, 0.0, 1e-9], 10, "pcus") == (9, 0, 1)
    assert sum(share_units([5.0, 2.0, 2.0, 1.0], 1040, "pmus")) == 1040


def test_more_stages_than_units_is_an_input_error():
    with pytest.raises(InputError, match="^a dataflow kernel of 3 stages that need pcus has only 2 pcus$"):
        share_units([1.0, 1.0, 1.0], 2, "pcus")


def test_a_memory_bound_kernel_takes_its_boundary_plus_fill_and_hand_overs_plus_its_hbm_stream():
    program = kernel(GEMV_BODY, GEMV)
    plan = plan_of(program)
    hbm_B = 2 * (4096 + 4096 * 4096) + 2 * 4096  # x and w read, z written, bf16
    assert plan.hbm_B == hbm_B
    hbm_Bps = SN40L.channel_bw_GBps("hbm") * 1e9  # sustained: the peak less refresh
    assert plan.bound == "hbm" and plan.bottleneck_s == pytest.approx(hbm_B / hbm_Bps)
    idle = sum(plan.stage_s)
    assert plan.tiles == max(plan.min_tiles, round(math.sqrt(idle / DF.hop_s)))
    pipeline = idle / plan.tiles + (plan.tiles + 2 - 1) * DF.hop_s
    launch, latency = DF.hw_launch_us * 1e-6, 2 * DF.memory_latency_ns * 1e-9  # one read, one write
    config = max(2080 * DF.config_B_per_unit / (DF.config_GBps * 1e9) - (launch + latency + pipeline), 0.0)
    assert plan.boundary == pytest.approx({"launch": launch, "barrier": 0.0, "configuration": config,
                                           "memory latency": latency, "fill and drain": pipeline,
                                           "collective latency": 0.0})
    expected = launch + config + latency + pipeline + hbm_B / hbm_Bps
    assert plan.time_s == pytest.approx(expected)
    assert run(program, SN40L).time_s == pytest.approx(expected, rel=1e-9)  # alone on the socket: the plan


def test_stage_time_is_its_flop_share_of_the_socket_or_its_pmu_bandwidth():
    plan = plan_of(kernel(GEMV_BODY, GEMV))
    for c, b, p, m, s in zip(plan.compute_s, plan.bytes_B, plan.pcus, plan.pmus, plan.stage_s):
        assert s == pytest.approx(max(c * 1040 / p, b / (m * DF.pmu_GBps * 1e9)))


def test_software_orchestration_pays_a_host_issue_per_socket_the_completion_wait_and_the_whole_configuration():
    hw, sw = (plan_of(kernel(GEMV_BODY, GEMV, hw=flag, sync=8)) for flag in (1, 0))
    assert sw.launch_s == pytest.approx(8 * DF.host_launch_us * 1e-6)  # one issue per socket, in turn
    assert sw.barrier_s == pytest.approx(DF.host_sync_us * 1e-6)
    assert sw.config_s == pytest.approx(2080 * DF.config_B_per_unit / (DF.config_GBps * 1e9))
    assert hw.launch_s == pytest.approx(DF.hw_launch_us * 1e-6)
    assert hw.config_s < sw.config_s  # prefetched while the previous kernel runs
    assert sw.time_s > hw.time_s


def test_a_kernel_ending_on_eight_sockets_pays_a_barrier_timed_by_the_collective_model():
    from opbsim.hardware.collectives import Collective, plan
    from opbsim.hardware.device_models.dataflow import barrier_s

    alone, group = (plan_of(kernel(GEMV_BODY, GEMV, sync=n)) for n in (0, 8))
    assert alone.barrier_s == 0.0
    assert group.barrier_s == barrier_s(SN40L, 8) == plan(SN40L.interconnect, Collective.ALLREDUCE, 4, 8).time_s
    assert group.time_s - alone.time_s == pytest.approx(group.barrier_s, abs=alone.config_s + 1e-15)


def test_fewer_pcus_make_a_compute_bound_kernel_slower():
    decl = (".desc a sram 0 bf16 [512, 1024]\n.desc b sram 1048576 bf16 [1024, 1024]\n"
            ".desc c sram 4194304 bf16 [512, 1024]\n")
    full, half = (run(kernel("  gemm.pcu c, a, b\n", decl, pcus=n), SN40L).time_s for n in (1040, 520))
    flops = 2 * 512 * 1024 * 1024
    assert full >= flops / 638e12 and half >= 2 * flops / 638e12


def test_a_tile_of_every_stage_fits_its_pmus_twice():
    small = dataclasses.replace(SN40L, model=DataflowModel(dataclasses.replace(DF, pmu_B=4096)))
    plan = plan_of(kernel(GEMV_BODY, GEMV), small)
    assert plan.min_tiles == max(math.ceil(2 * b / (m * 4096)) for b, m in zip(plan.bytes_B, plan.pmus))
    assert plan.tiles >= plan.min_tiles


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 64), st.integers(1, 512), st.integers(1, 512), st.integers(1, 1040), st.booleans())
def test_a_fused_kernel_never_beats_its_roofline(m, k, n, pcus, hw):
    decl = (f".desc a hbm 0 bf16 [{m}, {k}]\n.desc b hbm 1048576 bf16 [{k}, {n}]\n"
            f".desc c sram 0 bf16 [{m}, {n}]\n.desc d ddr 0 bf16 [{m}, {n}]\n")
    program = kernel("  gemm.pcu c, a, b\n  silu.pcu c, c\n  exp.pcu d, c\n", decl, pcus=max(pcus, 3), hw=int(hw))
    launch = program.instructions[0]
    body = program.instructions[2:]
    works = [work_of(program, i) for i in body]
    compute = sum(w.matrix_flops for w in works) / 638e12 + sum(w.vector_flops for w in works) / (
        SN40L.compute(launch.unit).vector_TFLOPS * 1e12)
    per_instruction = max(roofline_bound_s(SN40L, i, work_of(program, i)) for i in body)
    t = run(program, SN40L).time_s
    assert t >= compute * (1 - 1e-9)
    assert t >= per_instruction * (1 - 1e-9)
    channels = {}
    for i in body:
        for space, nbytes in work_of(program, i).bytes_by_space:
            for c in SN40L.path(i.unit, space).channels:
                channels[c] = channels.get(c, 0) + nbytes
    assert all(t >= nbytes / (SN40L.channel_bw_GBps(c) * 1e9) * (1 - 1e-9) for c, nbytes in channels.items())


@pytest.mark.parametrize("pcus,pmus,message", [
    (0, 8, "launch.pcu asks for pcus=0, pmus=8; device sn40l has 1..1040 pcus and 1..1040 pmus"),
    (1041, 8, "launch.pcu asks for pcus=1041, pmus=8; device sn40l has 1..1040 pcus and 1..1040 pmus"),
    (1, 8, "a dataflow kernel of 2 stages that need pcus has only 1 pcus"),
])
def test_a_launch_asking_for_units_the_socket_cannot_give_is_an_input_error(pcus, pmus, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        run(kernel(GEMV_BODY, GEMV, pcus=pcus, pmus=pmus), SN40L)


def test_a_dataflow_device_without_dataflow_parameters_is_an_input_error_before_any_kernel_runs():
    with pytest.raises(InputError, match="^device plain: device model dataflow needs dataflow parameters$"):
        dataclasses.replace(SN40L, name="plain", model=DataflowModel(None))


def test_a_pcu_kernel_on_a_device_of_another_model_runs_its_body_instruction_by_instruction():
    plain = dataclasses.replace(SN40L, name="plain", model=GPU)
    stats = run(kernel(GEMV_BODY, GEMV), plain)
    assert [iv.mnemonic for iv in stats.timeline].count("launch") == 1 and len(stats.timeline) > 1


def test_a_dma_copy_sharing_hbm_slows_the_kernel_down():
    decl = GEMV + ".desc big hbm 50000000 bf16 [8388608]\n.desc far ddr 0 bf16 [8388608]\n"
    alone = run(kernel(GEMV_BODY, GEMV), SN40L).time_s
    program = assemble(f"{decl}copy.dma far, big\nlaunch.pcu k, count=2, pcus=1040, pmus=1040, hw=1\nhalt\nk:\n"
                       f"{GEMV_BODY}")
    stats = run(program, SN40L)
    kernel_iv = next(iv for iv in stats.timeline if iv.mnemonic == "launch")
    assert kernel_iv.end_s - kernel_iv.start_s > alone


def _pair(m, k, n, op, dependent, fused, hw, sync):
    """gemm t = a b then ``op`` d = op(t) (or op(e), independent), as one kernel with t in SRAM or as
    two kernels handing t over through HBM."""
    t_space = "sram" if fused and dependent else "hbm"  # an independent t is a result either way
    src = "t" if dependent else "e"
    mib = 2**20  # a, t, e, d at most 4 MiB each, b 32 MiB
    decl = (f".desc a hbm 0 bf16 [{m}, {k}]\n.desc b hbm {4 * mib} bf16 [{k}, {n}]\n"
            f".desc t {t_space} {36 * mib} bf16 [{m}, {n}]\n.desc e hbm {40 * mib} bf16 [{m}, {n}]\n"
            f".desc d hbm {44 * mib} bf16 [{m}, {n}]\n")
    tail = f"pcus=1040, pmus=1040, hw={hw}, sync={sync}"
    if fused:
        return assemble(f"{decl}launch.pcu k, count=2, {tail}\nhalt\nk:\n  gemm.pcu t, a, b\n  {op}.pcu d, {src}\n")
    return assemble(f"{decl}launch.pcu k1, count=1, {tail}\nlaunch.pcu k2, count=1, {tail}\nhalt\n"
                    f"k1:\n  gemm.pcu t, a, b\nk2:\n  {op}.pcu d, {src}\n")


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 512), st.integers(1, 4096), st.integers(1, 4096), st.sampled_from(["silu", "exp", "relu"]),
       st.booleans(), st.booleans(), st.sampled_from([0, 8]))
def test_fusing_two_kernels_never_adds_hbm_traffic_and_never_slows_the_stage(m, k, n, op, dependent, hw, sync):
    """Pairs of up to ~30 us of work. A limit of the claim: a fused stage holds an integer share of the PCUs (at
    most its FLOP share), so a compute-bound kernel seconds long with a tiny second stage could lose more to
    the rounding (up to 1/1040 of its work) than the one boundary fusion saves (a few us)."""
    fused, apart = (_pair(m, k, n, op, dependent, f, int(hw), sync) for f in (True, False))
    f_stats, a_stats = run(fused, SN40L), run(apart, SN40L)
    f_hbm, a_hbm = (dict(s.bytes_by_space).get(Space.HBM, 0) for s in (f_stats, a_stats))
    assert f_hbm <= a_hbm
    assert f_hbm == a_hbm - (4 * m * n if dependent else 0)  # t written and read back, bf16
    assert f_stats.time_s <= a_stats.time_s
