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
        KernelEfficiency(gemm_peak_fraction=0.8, tile_rows=64, hbm_fraction=1.2)


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
