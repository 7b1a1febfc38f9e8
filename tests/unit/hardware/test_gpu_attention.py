"""GPU attention and elementwise kernels: each at its kernel-level benchmark, applied by shape.

Decode attention takes FlashInfer's measured bandwidth share for its whole kernel's KV bytes; a
causal prefill chunk computes its unmasked half at FlashAttention's fraction of the peak, keeping
its scores on chip; elementwise kernels stream at QuACK's share. Devices without a GPU efficiency
model (PIM, SN40L) keep every byte and the full score square."""

import math
from dataclasses import replace

import pytest

from opbsim.compiler import compile_graph
from opbsim.emulator.asmbuild import AsmBuilder
from opbsim.emulator.engine import run
from opbsim.emulator.work import achievable_s, fused_attention, roofline_bound_s, work_of
from opbsim.errors import InputError, ProgramError
from opbsim.hardware.gpu_efficiency import AMPERE, HOPPER, StreamCurve
from opbsim.hardware.presets import PRESETS
from opbsim.isa.program import AttentionPart
from opbsim.isa.types import DType, Space, Unit
from opbsim.workloads import PrefillChunk, Stage, build_model, get_preset

H100_Bps, A100_PCIE_Bps = 3352e9, 1935e9
KV_TOKEN_B = 32 * 128 * 2 * 2  # the FlashInfer benchmark's llama-7b layer: 16 KiB per token


def _share(curve: StreamCurve, nbytes: float, bw: float) -> float:
    return nbytes / bw / curve.time_s(nbytes, bw)


def test_decode_attention_reaches_flashinfer_s_measured_share_at_the_benchmark_s_sizes():
    # Fig. 6, H100 SXM: batch 64 x 128 tokens, batch 16 x 512 and batch 1 x 8192 (134 MB) average 62.3%
    assert _share(HOPPER.decode_attention, 8192 * KV_TOKEN_B, H100_Bps) == pytest.approx((.593 + .635 + .641) / 3)
    assert _share(HOPPER.decode_attention, 65536 * KV_TOKEN_B, H100_Bps) == pytest.approx((.875 + .890 + .883) / 3)
    assert _share(AMPERE.decode_attention, 65536 * KV_TOKEN_B, A100_PCIE_Bps) == pytest.approx((.870 + .840 + .872) / 3)


@pytest.mark.parametrize("eff, bw", [(HOPPER, H100_Bps), (AMPERE, A100_PCIE_Bps)])
def test_a_decode_kernel_never_takes_less_time_for_more_bytes_and_never_beats_the_bandwidth(eff, bw):
    sizes = [2 ** (k / 4) for k in range(4 * 10, 4 * 33)]  # 1 KiB .. 8 GiB
    times = [eff.decode_attention.time_s(b, bw) for b in sizes]
    assert all(b >= a * (1 - 1e-12) for a, b in zip(times, times[1:]))
    assert all(t >= b / bw for b, t in zip(sizes, times))
    floor = eff.decode_attention.time_s(1.0, bw)  # a tiny kernel takes the smallest measured kernel's time
    assert floor == pytest.approx(eff.decode_attention.points[0][0] / eff.decode_attention.points[0][1])
    assert 5e-6 < floor < 10e-6


def test_a_faster_memory_reaches_the_same_share_at_the_same_streaming_time():
    curve, h200_Bps = HOPPER.decode_attention, 4800e9
    for nbytes in (4e6, 40e6, 400e6):
        assert _share(curve, nbytes * h200_Bps / H100_Bps, h200_Bps) == pytest.approx(_share(curve, nbytes, H100_Bps))


def test_a_bad_stream_curve_is_one_line():
    with pytest.raises(InputError, match=r"^stream curve: times must increase$"):
        StreamCurve(((2e-6, 0.5), (1e-6, 0.6)))
    with pytest.raises(InputError, match=r"^stream curve: the share at 1e-06 s must be in \(0, 1\], got 1.5$"):
        StreamCurve(((1e-6, 1.5),))


def test_a_causal_chunk_attends_its_past_and_the_lower_triangle_of_its_own_tokens():
    assert AttentionPart("prefill", 4096, 0).unmasked_share == pytest.approx(4097 / 8192)
    assert AttentionPart("prefill", 100, 300).unmasked_share == pytest.approx((100 * 300 + 100 * 101 / 2) / (100 * 400))
    assert AttentionPart("decode", 1, 999).unmasked_share == 1.0
    with pytest.raises(ProgramError, match=r"^attention phase must be prefill or decode, got 'append'$"):
        AttentionPart("append", 1, 0)


def test_prefill_attention_follows_flashattention_3_by_context_and_flashattention_2_s_lower_end_on_ampere():
    assert HOPPER.prefill_attention_fraction(4096) == pytest.approx(579 / 989.4)
    assert HOPPER.prefill_attention_fraction(2896) == pytest.approx((521 + 579) / 2 / 989.4, rel=1e-3)  # 2^11.5
    assert HOPPER.prefill_attention_fraction(64) == HOPPER.prefill_attention_fraction(512)  # held past the ends
    assert AMPERE.prefill_attention_fraction(128) == AMPERE.prefill_attention_fraction(16384) == 0.5


def _attention(device: str, stage: Stage, policy: str = "xpu-only"):
    """A one-layer Llama-3-70B at tp 8 (8 query heads per KV head) compiled for ``stage``: the
    program and its attention instructions."""
    graph = build_model(replace(get_preset("llama-3-70b"), num_layers=1), stage, tp=8)
    p = compile_graph(graph, PRESETS[device], policy).program
    return p, [i for i in p.instructions if i.attention is not None]


def _kernel_s(device: str, stage: Stage) -> tuple[float, int]:
    """(seconds the decode-attention kernel's GEMMs take, its KV bytes from HBM)."""
    spec = PRESETS[device]
    p, insts = _attention(device, stage)
    works = [work_of(p, i, fused=fused_attention(spec, i)) for i in insts]
    kernel_B = sum(dict(w.bytes_by_space).get(Space.HBM, 0) for w in works)
    return sum(achievable_s(spec, i, w, kernel_hbm_B=kernel_B) for i, w in zip(insts, works)
               if i.mnemonic == "gemm"), kernel_B


@pytest.mark.parametrize("stage", [Stage.decode(1, 4096), Stage.decode(64, 1024), Stage.decode(16, 300)])
def test_a_decode_attention_kernel_takes_the_curve_s_time_for_all_its_requests_kv_bytes(stage):
    t, kernel_B = _kernel_s("h100", stage)
    assert t == pytest.approx(HOPPER.decode_attention.time_s(kernel_B, H100_Bps), rel=1e-9)


def test_decode_attention_is_applied_by_shape_a_larger_kernel_streams_at_a_larger_share():
    small_s, small_B = _kernel_s("h100", Stage.decode(1, 512))
    large_s, large_B = _kernel_s("h100", Stage.decode(64, 4096))
    assert small_B / small_s < 0.2 * H100_Bps < 0.5 * H100_Bps < large_B / large_s
    # GQA (8 query heads per KV head) is not timed as a GEMM padded to a 64-row tile
    p, insts = _attention("h100", Stage.decode(64, 4096))
    gemm = next(i for i in insts if i.mnemonic == "gemm")
    w = work_of(p, gemm, fused=True)
    padded = w.matrix_flops / (989.4e12 * HOPPER.gemm_fraction(w.gemm_rows))
    assert achievable_s(PRESETS["h100"], gemm, w, kernel_hbm_B=large_B) < padded


def test_a_prefill_chunk_computes_its_unmasked_half_at_the_flashattention_fraction_with_scores_on_chip():
    spec = PRESETS["h100"]
    p, insts = _attention("h100", Stage(prefill=(PrefillChunk(4096),)))
    qk, softmax, pv = insts
    assert (qk.mnemonic, softmax.mnemonic, pv.mnemonic) == ("gemm", "softmax", "gemm")
    plain, fused = work_of(p, qk), work_of(p, qk, fused=True)
    assert fused.matrix_flops == round(plain.matrix_flops * 4097 / 8192)  # the unmasked half
    assert fused.total_B < plain.total_B / 10  # no score traffic
    assert work_of(p, softmax, fused=True).total_B == 0
    expected = fused.matrix_flops / (989.4e12 * HOPPER.prefill_attention_fraction(4096))
    assert achievable_s(spec, qk, fused) == pytest.approx(expected, rel=1e-9)
    assert achievable_s(spec, qk, fused) >= roofline_bound_s(spec, qk, fused)


def test_pim_and_dataflow_units_run_attention_as_its_instructions():
    _, insts = _attention("duplex", Stage.decode(8, 256), "duplex")
    on_pim = [i for i in insts if i.unit is Unit.PIM]
    assert on_pim and not any(fused_attention(PRESETS["duplex"], i) for i in on_pim)
    assert not fused_attention(PRESETS["sn40l"], replace(on_pim[0], unit=Unit.PCU))


def test_an_elementwise_kernel_streams_at_quack_s_share_of_the_bandwidth():
    assert HOPPER.elementwise_fraction == 0.90 and AMPERE.elementwise_fraction == 0.90
    b = AsmBuilder("add")
    for name in ("x", "y", "z"):
        b.tensor(name, Space.HBM, DType.BF16, (4096, 8192))
    b.op("add.xpu z, x, y")
    program = b.program()
    inst = program.instructions[0]
    spec = PRESETS["h200"]
    t = achievable_s(spec, inst, work_of(program, inst))
    assert t == pytest.approx(3 * 4096 * 8192 * 2 / (4800e9 * HOPPER.elementwise_fraction))
    assert run(program, spec).time_s == pytest.approx(t + spec.compute(Unit.XPU).issue_ns * 1e-9, rel=1e-6)
    assert math.isfinite(t)
