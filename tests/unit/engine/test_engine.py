"""Timing engine: rooflines, contention, bank-bundle sections, dependencies, determinism."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.emulator.engine import run
from opbsim.emulator.work import roofline_bound_s, work_of
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.hardware.gpu_efficiency import HOPPER
from opbsim.isa import Unit, assemble


def _at_peaks(device):
    """``device`` with its kernels at the peaks (no efficiency model): the engine's mechanics alone."""
    return replace(device, units=tuple(replace(u, efficiency=None) for u in device.units))


H100_KERNELS = get_device("h100")
DUPLEX = _at_peaks(get_device("duplex"))
H100 = _at_peaks(H100_KERNELS)
GB = 1e9
QUARTER_HBM = DUPLEX.memory(DUPLEX.memories[0].space).capacity_B // 4  # one bank-bundle section


def prog(text: str):
    return assemble(text)


def test_a_weight_stream_gemv_on_the_gpu_takes_its_bytes_at_the_achievable_hbm_bandwidth_plus_launch():
    p = prog(""".desc x sram 0 bf16 [1, 4096]
.desc w hbm 0 bf16 [4096, 4096]
.desc y sram 0x10000 fp32 [1, 4096]
gemm.xpu y, x, w
""")
    stats = run(p, H100_KERNELS)
    weight_B = 4096 * 4096 * 2  # bf16 weights dominate the HBM traffic
    assert stats.time_s == pytest.approx(1e-6 + weight_B / (3352 * GB * HOPPER.hbm_fraction))  # issue 1 us, stream
    assert dict(stats.bytes_by_space)[DUPLEX.memories[0].space] == weight_B


def test_a_large_gemm_is_compute_bound_at_the_achievable_share_of_the_tensor_peak():
    p = prog(""".desc a hbm 0 bf16 [8192, 8192]
.desc b hbm 0x10000000 bf16 [8192, 8192]
.desc c hbm 0x20000000 bf16 [8192, 8192]
gemm.xpu c, a, b
""")
    flops = 2 * 8192**3
    assert run(p, H100_KERNELS).time_s == pytest.approx(1e-6 + flops / (989.4e12 * HOPPER.gemm_peak_fraction))


def test_two_units_streaming_the_same_channel_share_its_bandwidth():
    text = """.desc a hbm 0 bf16 [1024, 1024]
.desc b hbm 0x200000 bf16 [1024, 1024]
.desc c hbm 0x400000 bf16 [1024, 1024]
.desc d hbm 0x600000 bf16 [1024, 1024]
add.xpu b, a, a
copy.dma c, d
"""
    alone = run(prog(".desc a hbm 0 bf16 [1024, 1024]\n.desc b hbm 0x200000 bf16 [1024, 1024]\nadd.xpu b, a, a\n"),
                H100)
    both = run(prog(text), H100)
    stream_s = alone.time_s - 1e-6
    assert both.time_s == pytest.approx(1e-6 + 2 * stream_s)  # each stream at half the bandwidth


def _section_program(pim_section: int) -> str:
    base = pim_section * QUARTER_HBM
    return f""".desc w1 hbm 0 bf16 [4096, 4096]
.desc x1 sram 0 bf16 [1, 4096]
.desc y1 sram 0x10000 fp32 [1, 4096]
.desc w2 hbm {base + 0x4000000} bf16 [4096, 4096]
.desc x2 pimbuf 0 bf16 [1, 4096]
.desc y2 pimbuf 0x10000 fp32 [1, 4096]
gemm.xpu y1, x1, w1
gemm.pim y2, x2, w2
"""


def test_xpu_and_logic_pim_overlap_on_different_bank_bundle_sections_and_serialise_on_the_same():
    apart = run(prog(_section_program(1)), DUPLEX)
    together = run(prog(_section_program(0)), DUPLEX)
    xpu_s = 1e-6 + 4096 * 4096 * 2 / (3352 * GB)
    pim_s = 100e-9 + 4096 * 4096 * 2 / (4 * 3352 * GB)
    assert apart.time_s == pytest.approx(max(xpu_s, pim_s))
    assert together.time_s == pytest.approx(xpu_s + pim_s)


def test_a_read_after_write_across_units_waits_for_the_writer():
    p = prog(""".desc w hbm 0 bf16 [4096, 4096]
.desc x sram 0 bf16 [1, 4096]
.desc y hbm 0x8000000 bf16 [1, 4096]
.desc z host 0 bf16 [1, 4096]
gemm.xpu y, x, w
copy.dma z, y
""")
    stats = run(p, H100)
    gemm, copy = sorted(stats.timeline, key=lambda iv: iv.index)
    assert copy.start_s == pytest.approx(gemm.end_s)


def test_signal_and_wait_order_two_units_and_a_wait_without_signal_is_a_deadlock_error():
    ok = prog(".desc a hbm 0 bf16 [64]\n.desc b hbm 0x1000 bf16 [64]\nsignal.dma token=3\nwait.xpu token=3\n"
              "add.xpu b, a, a\nhalt\n")
    assert run(ok, H100).time_s > 0
    stuck = prog("wait.xpu token=3\nhalt\n")
    with pytest.raises(InputError, match=r"^deadlock: instruction 0 \(wait.xpu\) can never issue"):
        run(stuck, H100)


def test_a_device_without_the_unit_is_an_input_error():
    p = prog(".desc a pimbuf 0 bf16 [64]\nexp.pim a, a\n")
    with pytest.raises(InputError, match="^device h100 has no pim unit$"):
        run(p, H100)


def test_instructions_after_halt_are_not_run():
    p = prog(".desc a hbm 0 bf16 [64]\nhalt\nexp.xpu a, a\n")
    assert run(p, H100).timeline == ()


# --- properties ---------------------------------------------------------------------------------

@st.composite
def streaming_programs(draw):
    """Random straight-line programs of gemms, elementwise ops and copies over HBM buffers spread
    across the bank-bundle sections, on the xPU, Logic-PIM and DMA units."""
    lines = [f".desc t{i} hbm {i * QUARTER_HBM // 2} bf16 [{draw(st.sampled_from([1, 8, 64]))}, 512]"
             for i in range(6)]
    lines.append(f".desc w hbm {7 * QUARTER_HBM // 2} bf16 [512, 512]")
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["gemm", "add", "exp", "copy"]))
        a, b, c = (f"t{draw(st.integers(0, 5))}" for _ in range(3))
        unit = draw(st.sampled_from(["xpu", "pim"]))
        lines.append({"copy": f"copy.dma {a}, {b}", "gemm": f"gemm.{unit} {a}, {b}, w",
                      "add": f"add.{unit} {a}, {b}, {c}", "exp": f"exp.{unit} {a}, {b}"}[kind])
    return "\n".join(lines) + "\nhalt\n"


@settings(max_examples=60, deadline=None)
@given(streaming_programs())
def test_no_instruction_and_no_program_beats_its_roofline_bound(text):
    p = prog(text)
    stats = run(p, DUPLEX)
    for iv in stats.timeline:
        inst = p.instructions[iv.index]
        assert iv.end_s - iv.start_s >= roofline_bound_s(DUPLEX, inst, work_of(p, inst)) * (1 - 1e-9)
    per_unit = {}
    for iv in stats.timeline:
        inst = p.instructions[iv.index]
        per_unit[iv.unit] = per_unit.get(iv.unit, 0.0) + roofline_bound_s(DUPLEX, inst, work_of(p, inst))
    assert stats.time_s >= max(per_unit.values(), default=0.0) * (1 - 1e-9)


def _raised(device, name: str, factor: float):
    """``device`` with one channel's bandwidth or one unit's throughput multiplied by ``factor``."""
    return replace(
        device,
        channels=tuple(replace(c, bw_GBps=c.bw_GBps * factor) if c.name == name else c for c in device.channels),
        units=tuple(replace(u, matrix_TFLOPS=u.matrix_TFLOPS * factor, vector_TFLOPS=u.vector_TFLOPS * factor)
                    if u.unit.name.lower() == name else u for u in device.units),
    )


_KNOBS = [c.name for c in DUPLEX.channels] + [u.unit.name.lower() for u in DUPLEX.units]


@settings(max_examples=100, deadline=None)
@given(streaming_programs(), st.sampled_from(_KNOBS), st.floats(1.0, 8.0))
def test_raising_any_bandwidth_or_compute_never_slows_a_program(text, knob, factor):
    p = prog(text)
    assert run(p, _raised(DUPLEX, knob, factor)).time_s <= run(p, DUPLEX).time_s * (1 + 1e-9)


@settings(max_examples=20, deadline=None)
@given(streaming_programs())
def test_a_run_is_deterministic(text):
    p = prog(text)
    assert run(p, DUPLEX) == run(p, DUPLEX)


def test_busy_time_and_energy_are_accounted_per_unit_and_group():
    p = prog(_section_program(1))
    stats = run(p, DUPLEX)
    busy = dict(stats.busy_s_by_unit)
    assert set(busy) == {Unit.XPU, Unit.PIM}
    weight_B = 4096 * 4096 * 2
    # each weight matrix is streamed once: one 909 pJ activation per 1 KiB row, then 0.73 pJ/bit column access
    # and the data path, 2.75 pJ/bit to the xPU and 1.08 pJ/bit to Logic-PIM ([LS] per-reader energies)
    rows = 2 * weight_B // 1024
    assert stats.energy.dram_activation == pytest.approx(rows * 909e-12)
    assert stats.energy.dram_column == pytest.approx(2 * weight_B * 8 * 187 / 256 * 1e-12)
    assert stats.energy.dram_datapath == pytest.approx(weight_B * 8 * (891 + 464 - 2 * 187) / 256 * 1e-12)
    assert stats.energy.static == pytest.approx(DUPLEX.static_W * stats.time_s)
    assert stats.energy_J == pytest.approx(sum(stats.energy.items().values()))
    assert 0 < stats.utilisation(Unit.PIM) < stats.utilisation(Unit.XPU) <= 1.0


def test_a_launched_kernel_pays_one_launch_for_its_whole_body():
    decl = "".join(f".desc x{i} sram {i * 0x10000} bf16 [1, 1024]\n.desc w{i} hbm {i * 0x200000} bf16 [1024, 1024]\n"
                   f".desc y{i} sram {0x100000 + i * 0x10000} fp32 [1, 1024]\n" for i in range(3))
    body = "".join(f"    gemm.xpu y{i}, x{i}, w{i}\n" for i in range(3))
    separate = run(prog(decl + body + "halt\n"), H100)
    kernel = run(prog(decl + "launch.xpu k, count=3, pcus=0, pmus=0\nhalt\nk:\n" + body), H100)
    assert separate.time_s - kernel.time_s == pytest.approx(2 * 1e-6)  # two launches saved
    assert [iv.mnemonic for iv in sorted(kernel.timeline, key=lambda iv: iv.start_s)] == ["launch"] + ["gemm"] * 3


def test_a_kernel_body_on_another_unit_is_rejected():
    p = prog(".desc a hbm 0 bf16 [64]\nlaunch.xpu k, count=1, pcus=0, pmus=0\nhalt\nk:\n    copy.dma a, a\n")
    with pytest.raises(InputError, match=r"^instruction 0 \(launch.xpu\): body instruction 2 \(copy.dma\) is not"):
        run(p, H100)


def test_a_small_activation_in_the_xpus_section_is_buffered_and_does_not_serialise_logic_pim():
    def program(x_rows: int) -> str:
        return f""".desc w1 hbm 0 bf16 [4096, 4096]
.desc x1 sram 0 bf16 [1, 4096]
.desc y1 sram 0x10000 fp32 [1, 4096]
.desc w2 hbm {QUARTER_HBM + 0x4000000} bf16 [4096, 4096]
.desc x2 hbm 0x8000000 bf16 [{x_rows}, 4096]
.desc y2 pimbuf 0x10000 fp32 [{x_rows}, 4096]
gemm.xpu y1, x1, w1
gemm.pim y2, x2, w2
"""
    xpu_s = 1e-6 + 4096 * 4096 * 2 / (3352 * GB)
    small = run(prog(program(1)), DUPLEX)  # 8 KiB of activations: loaded into the PIM's input buffer
    assert small.time_s < xpu_s + 0.5 * (100e-9 + 4096 * 4096 * 2 / (4 * 3352 * GB))
    large = run(prog(program(256)), DUPLEX)  # 2 MiB streamed from the xPU's section: it waits
    assert large.time_s > xpu_s + 4096 * 4096 * 2 / (4 * 3352 * GB)
