"""GPU kernel efficiencies: fractions of the peaks, monotone in GEMM rows, never faster than the roofline."""

import pytest

from opbsim.emulator.asmbuild import AsmBuilder
from opbsim.emulator.engine import run
from opbsim.emulator.work import achievable_s, compute_s, roofline_bound_s, work_of
from opbsim.errors import InputError
from opbsim.hardware.gpu_efficiency import AMPERE, HOPPER, KernelEfficiency
from opbsim.hardware.presets import PRESETS
from opbsim.isa.types import DType, Space


@pytest.mark.parametrize("eff", [HOPPER, AMPERE])
def test_gemm_fraction_is_at_most_one_and_never_falls_over_whole_tiles(eff):
    fractions = [eff.gemm_fraction(m) for m in range(1, 4 * eff.tile_rows + 1)]
    assert all(0 < f <= 1 for f in fractions)
    tiles = [eff.gemm_fraction(k * eff.tile_rows) for k in range(1, 9)]
    assert tiles == sorted(tiles)
    assert eff.gemm_fraction(eff.tile_rows) == eff.gemm_peak_fraction
    assert eff.gemm_fraction(8) == pytest.approx(eff.gemm_peak_fraction * 8 / 64)  # 8 rows fill 8/64 of a tile


def test_fractions_outside_zero_to_one_are_refused_with_one_line():
    with pytest.raises(InputError, match=r"^kernel efficiency: hbm_fraction must be in \(0, 1\], got 1.2$"):
        KernelEfficiency(gemm_peak_fraction=0.8, tile_rows=64, hbm_fraction=1.2, grouped_gemm_peak_fraction=0.5)


@pytest.mark.parametrize("device", ["h100", "a100", "h100-pcie", "h200", "l40s"])
def test_every_gpu_preset_has_an_efficiency_model(device):
    from opbsim.isa.types import Unit

    assert PRESETS[device].compute(Unit.XPU).efficiency is not None


def _gemm(rows: int):
    b = AsmBuilder("gemm")
    b.tensor("x", Space.HBM, DType.BF16, (rows, 4096))
    b.tensor("w", Space.HBM, DType.BF16, (4096, 4096))
    b.tensor("y", Space.HBM, DType.BF16, (rows, 4096))
    b.op("gemm.xpu y, x, w")
    return b.program()


@pytest.mark.parametrize("rows", [1, 8, 64, 512, 4096])
def test_a_gemm_on_the_h100_takes_its_achievable_time_never_less_than_its_roofline(rows):
    device = PRESETS["h100"]
    program = _gemm(rows)
    inst = program.instructions[0]
    work = work_of(program, inst)
    assert achievable_s(device, inst, work) >= compute_s(device, inst, work)
    t = run(program, device).time_s
    assert t >= roofline_bound_s(device, inst, work)
    hbm_B = 2 * (rows * 4096 * 2 + 4096 * 4096)  # x and y (rows x 4096) and w (4096 x 4096), bf16
    assert t >= hbm_B / (3352e9 * HOPPER.hbm_fraction)  # no faster than the achievable HBM bandwidth


def test_a_large_gemm_runs_at_the_achievable_fraction_of_the_matrix_peak():
    device = PRESETS["h100"]
    program = _gemm(4096)
    t = run(program, device).time_s - device.compute(program.instructions[0].unit).issue_ns * 1e-9
    assert t == pytest.approx(2 * 4096**3 / (989.4e12 * HOPPER.gemm_peak_fraction), rel=1e-6)


def test_fused_moe_expert_gemms_reach_the_grouped_fraction_from_vllm_kernel_benchmarks():
    # [V24700]: Mixtral tp 2 on H100, 1536 tokens x top-2 x 2 x 3 x 4096 x 7168 flops in 1122.93 us
    assert HOPPER.grouped_gemm_peak_fraction == pytest.approx(1536 * 2 * 2 * 3 * 4096 * 7168 / 1122.93e-6 / 989.4e12,
                                                              abs=0.005)
    # [V40542]: E=64 N=1408 on A100, 4096 tokens x top-6 x 2 x 3 x 2048 x 1408 flops in 2636.6 us
    assert AMPERE.grouped_gemm_peak_fraction == pytest.approx(4096 * 6 * 2 * 3 * 2048 * 1408 / 2636.6e-6 / 312e12,
                                                              abs=0.005)
    for eff in (HOPPER, AMPERE):
        assert eff.gemm_fraction(256, grouped=True) == eff.grouped_gemm_peak_fraction < eff.gemm_fraction(256)
        assert eff.gemm_fraction(8, grouped=True) == pytest.approx(eff.grouped_gemm_peak_fraction * 8 / 64)


def test_the_compiler_marks_routed_expert_gemms_grouped_and_dense_gemms_not():
    from opbsim.compiler import compile_graph
    from opbsim.workloads import Stage, build_model

    from ..compiler.test_compiled_values import small_llama, small_mixtral

    def gemm_flags(model):
        program = compile_graph(build_model(model, Stage.decode(8, 40)), PRESETS["h100"], "xpu-only").program
        return [i.grouped for i in program.instructions if i.mnemonic == "gemm"]

    moe, dense = gemm_flags(small_mixtral()), gemm_flags(small_llama())
    assert any(moe) and not all(moe)  # expert FFN GEMMs grouped; attention projections and the head not
    assert dense and not any(dense)
