"""The timing and energy models charge an fp8 e4m3 element 1 byte wherever it moves: weights read by
gemm_fp8, activations and KV-cache entries written by quant, copied, gathered or scattered; the
block scales 4 bytes each; and gemm_fp8 counts its promotion (2 fp32 operations per output per k
block) besides its matrix work."""

from __future__ import annotations

import pytest

from opbsim.emulator.energy import work_energy
from opbsim.emulator.engine import run
from opbsim.emulator.work import FP8_PROMOTION_OPS, work_of
from opbsim.hardware import get_device
from opbsim.hardware.gpu_efficiency import HOPPER
from opbsim.isa import Space, Unit, assemble

H100 = get_device("h100")
GB = 1e9


def _gemv(weight_dtype: str) -> str:
    if weight_dtype == "bf16":
        return """.desc x sram 0 bf16 [1, 4096]
.desc w hbm 0 bf16 [4096, 4096]
.desc y sram 0x10000 fp32 [1, 4096]
gemm.xpu y, x, w
"""
    return """.desc x sram 0 bf16 [1, 4096]
.desc w hbm 0 fp8_e4m3 [4096, 4096]
.desc sa sram 0x20000 fp32 [1, 32] strides=[0, 0]
.desc sb hbm 0x2000000 fp32 [32, 32]
.desc y sram 0x10000 fp32 [1, 4096]
gemm_fp8.xpu y, x, w, sa, sb, block_k=128, block_n=128
"""


def test_an_fp8_weight_gemv_reads_one_byte_per_weight_plus_its_block_scales():
    p = assemble(_gemv("fp8"))
    work = work_of(p, p.instructions[0])
    hbm = dict(work.bytes_by_space)[Space.HBM]
    assert hbm == 4096 * 4096 * 1 + 32 * 32 * 4
    assert dict(work.bytes_by_space)[Space.SRAM] == 4096 * 2 + 4 + 4096 * 4  # x, one broadcast scale, y
    assert work.matrix_flops == 2 * 4096 * 4096
    assert work.vector_flops == FP8_PROMOTION_OPS * 4096 * 32


def test_an_fp8_weight_gemv_on_the_gpu_streams_half_the_bytes_of_the_bf16_one():
    fp8, bf16 = run(assemble(_gemv("fp8")), H100), run(assemble(_gemv("bf16")), H100)
    weight_B = 4096 * 4096 + 32 * 32 * 4
    assert fp8.time_s == pytest.approx(1e-6 + weight_B / (3352 * GB * HOPPER.hbm_fraction))
    assert (fp8.time_s - 1e-6) / (bf16.time_s - 1e-6) == pytest.approx(0.5, rel=1e-3)


def test_quant_reads_its_source_and_scales_and_writes_one_byte_per_element():
    p = assemble(""".desc x hbm 0 bf16 [16, 1024]
.desc s hbm 0x10000 fp32 [16, 8]
.desc q hbm 0x20000 fp8_e4m3 [16, 1024]
quant.xpu q, x, s, group=128
""")
    work = work_of(p, p.instructions[0])
    assert dict(work.bytes_by_space)[Space.HBM] == 16 * 1024 * (2 + 1) + 16 * 8 * 4
    assert work.vector_flops == 2 * 16 * 1024


def test_an_fp8_kv_cache_append_and_read_move_one_byte_per_element():
    p = assemble(""".desc k_new sram 0 fp8_e4m3 [4, 512]
.desc pos sram 0x1000 i32 [4]
.desc cache hbm 0 fp8_e4m3 [4096, 512]
.desc rows sram 0x2000 fp8_e4m3 [4, 512]
scatter.xpu cache, k_new, pos
gather.xpu rows, cache, pos
copy.dma rows, k_new
""")
    scatter, gather, copy = (work_of(p, i) for i in p.instructions[:3])
    assert dict(scatter.bytes_by_space)[Space.HBM] == 4 * 512
    assert dict(gather.bytes_by_space)[Space.HBM] == 4 * 512
    assert dict(copy.bytes_by_space)[Space.SRAM] == 2 * 4 * 512


def test_the_dram_energy_of_an_fp8_weight_stream_is_half_the_bf16_one():
    def dram_J(text):
        p = assemble(text)
        e = work_energy(H100, Unit.XPU, work_of(p, p.instructions[0]))
        return e.dram_column + e.dram_datapath
    ratio = dram_J(_gemv("fp8")) / dram_J(_gemv("bf16"))
    assert ratio == pytest.approx((4096 * 4096 + 32 * 32 * 4) / (4096 * 4096 * 2))


def _square_gemm(a_dtype: str) -> str:
    """A compute-bound 4096^3 gemm_fp8, activations ``a_dtype`` with 1 x 128 scales."""
    return f""".desc x sram 0 {a_dtype} [4096, 4096]
.desc w hbm 0 fp8_e4m3 [4096, 4096]
.desc sa sram 0x2000000 fp32 [4096, 32]
.desc sb hbm 0x2000000 fp32 [32, 32]
.desc y sram 0x4000000 bf16 [4096, 4096]
gemm_fp8.xpu y, x, w, sa, sb, block_k=128, block_n=128
"""


def test_an_all_fp8_gemm_runs_at_the_fp8_tensor_peak_twice_the_bf16_one():
    from opbsim.emulator.work import compute_s
    fp8, mixed = assemble(_square_gemm("fp8_e4m3")), assemble(_square_gemm("bf16"))
    w8, wm = work_of(fp8, fp8.instructions[0]), work_of(mixed, mixed.instructions[0])
    assert w8.fp8_matrix and not wm.fp8_matrix
    xpu = H100.compute(Unit.XPU)
    assert (xpu.fp8_matrix_TFLOPS, xpu.matrix_TFLOPS) == (1979.0, 989.4)  # H100 SXM datasheet, dense
    vector_s = w8.vector_flops / (xpu.vector_TFLOPS * 1e12)
    assert compute_s(H100, fp8.instructions[0], w8) == pytest.approx(2 * 4096**3 / 1979e12 + vector_s)
    assert compute_s(H100, mixed.instructions[0], wm) == pytest.approx(2 * 4096**3 / 989.4e12 + vector_s)


def test_a_device_without_an_fp8_tensor_path_runs_fp8_gemms_at_its_matrix_peak():
    from opbsim.emulator.work import compute_s
    a100 = get_device("a100")
    p = assemble(_square_gemm("fp8_e4m3"))
    w = work_of(p, p.instructions[0])
    xpu = a100.compute(Unit.XPU)
    assert xpu.fp8_matrix_TFLOPS == 0.0
    assert compute_s(a100, p.instructions[0], w) == pytest.approx(
        2 * 4096**3 / (xpu.matrix_TFLOPS * 1e12) + w.vector_flops / (xpu.vector_TFLOPS * 1e12))
