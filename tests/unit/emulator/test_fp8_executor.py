"""The functional executor's fp8 instructions equal numerics_fp8 bit for bit: gemm_fp8 (bf16 or e4m3
activations, e4m3 weights, every e4m3 code including NaN, partial scale blocks, strided and broadcast
views, batch axes), quant and act_quant; the fast path (fp8_gemm.py) agrees with the definition on large
shapes; and bad operands fail with one-line operand errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from opbsim.emulator.faults import ExecutionError
from opbsim.emulator.fp8_gemm import gemm_fp8 as fast_gemm_fp8
from opbsim.isa import numerics as N
from opbsim.isa.fp8 import fp8_bits
from opbsim.isa.numerics_fp8 import blocks
from opbsim.isa.types import DType

from .harness import Bench

BF16, FP32, FP8 = DType.BF16, DType.FP32, DType.FP8_E4M3
COVERED = {"gemm_fp8", "quant", "act_quant"}

# (m, k, n, block_k, block_n): one block, partial last blocks in k and n, many small blocks
GEMM_CASES = [(1, 1, 1, 128, 128), (3, 128, 128, 128, 128), (5, 300, 200, 128, 128), (4, 37, 19, 4, 8),
              (2, 64, 1, 1, 1), (17, 129, 130, 64, 32)]


def _scales(rng, shape):
    """Positive fp32 scales as checkpoints hold them (amax / 448), some exactly 1."""
    s = (rng.uniform(0.5, 2.0, shape) * 10.0 ** rng.integers(-4, 2, shape)).astype(np.float32)
    return np.where(rng.random(shape) < 0.2, np.float32(1.0), s)


def _assert_same(got, want):
    assert got.shape == want.shape and got.dtype == want.dtype
    assert np.array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}"))


@pytest.mark.parametrize(("case", "ta", "td", "layouts"),
                         list(itertools.product(GEMM_CASES, (BF16, FP8), (BF16, FP32),
                                                (("c", "c"), ("permuted", "permuted"), ("padded", "broadcast")))))
def test_gemm_fp8_equals_its_definition_bit_for_bit(case, ta, td, layouts):
    m, k, n, bk, bn = case
    rng = np.random.default_rng(abs(hash((case, ta, td, layouts))) % 2**32)
    b = Bench(rng)
    b.tensor("a", ta, (m, k), layouts[0])
    b.tensor("b", FP8, (k, n), layouts[1])
    b.tensor("sa", FP32, (m, blocks(k, bk)), data=_scales(rng, (m, blocks(k, bk))))
    b.tensor("sb", FP32, (blocks(k, bk), blocks(n, bn)), data=_scales(rng, (blocks(k, bk), blocks(n, bn))))
    b.tensor("dst", td, (m, n), fill=False)
    mem, before = b.run("gemm_fp8", {"dst": "dst", "a": "a", "b": "b", "sa": "sa", "sb": "sb",
                                     "block_k": bk, "block_n": bn})
    want = N.gemm_fp8(N.widen(before["a"], ta), N.widen(before["b"], FP8), before["sa"], before["sb"], bk, bn)
    _assert_same(b.raw(mem, "dst"), N.store(want, td))


@pytest.mark.parametrize("batch", [(2,), (2, 3)])
def test_gemm_fp8_runs_each_batch_slice_with_its_own_scales(batch):
    rng = np.random.default_rng(len(batch))
    b = Bench(rng)
    b.tensor("a", BF16, batch + (3, 40))
    b.tensor("b", FP8, batch + (40, 9), "broadcast")
    b.tensor("sa", FP32, batch + (3, 3), data=np.ones(batch + (3, 3), np.float32))
    b.tensor("sb", FP32, batch + (3, 2), data=_scales(rng, batch + (3, 2)))
    b.tensor("dst", FP32, batch + (3, 9), fill=False)
    mem, before = b.run("gemm_fp8", {"dst": "dst", "a": "a", "b": "b", "sa": "sa", "sb": "sb",
                                     "block_k": 16, "block_n": 8})
    want = N.gemm_fp8(N.widen(before["a"], BF16), N.widen(before["b"], FP8), before["sa"], before["sb"], 16, 8)
    _assert_same(b.raw(mem, "dst"), N.store(want, FP32))


def test_the_fast_path_equals_the_definition_on_a_deepseek_v3_shaped_block_grid():
    rng = np.random.default_rng(5)
    m, k, n = 24, 512, 384
    a = fp8_bits(rng.standard_normal((m, k)).astype(np.float32) * 50)
    w = fp8_bits(rng.standard_normal((n, k)).astype(np.float32) * 100).T  # a transposed [N, K] weight
    sa, sb = _scales(rng, (m, 4)), _scales(rng, (4, 3))
    want = N.gemm_fp8(N.widen(a, FP8), N.widen(w, FP8), sa, sb, 128, 128)
    _assert_same(fast_gemm_fp8(a, w, sa, sb, 128, 128), want)


@pytest.mark.parametrize(("shape", "group", "ts", "layout"),
                         [((7,), 128, BF16, "c"), ((3, 300), 128, FP32, "permuted"), ((2, 2, 40), 8, BF16, "padded"),
                          ((4, 16), 1, FP32, "c")])
def test_quant_equals_its_definition_bit_for_bit(shape, group, ts, layout):
    rng = np.random.default_rng(abs(hash((shape, group, ts))) % 2**32)
    b = Bench(rng)
    sshape = shape[:-1] + (blocks(shape[-1], group),)
    b.tensor("src", ts, shape, layout)
    b.tensor("scale", FP32, sshape, data=_scales(rng, sshape))
    b.tensor("dst", FP8, shape, fill=False)
    mem, before = b.run("quant", {"dst": "dst", "src": "src", "scale": "scale", "group": group})
    _assert_same(b.raw(mem, "dst"), N.quant(N.widen(before["src"], ts), before["scale"], group))


def test_quant_with_a_per_tensor_scale_is_a_stride_zero_view():
    rng = np.random.default_rng(2)
    b = Bench(rng)
    b.tensor("src", BF16, (6, 256))
    b.tensor("scale", FP32, (6, 2), "broadcast", data=np.full((6, 2), 0.03125, np.float32))
    b.tensor("dst", FP8, (6, 256), fill=False)
    mem, before = b.run("quant", {"dst": "dst", "src": "src", "scale": "scale", "group": 128})
    with np.errstate(all="ignore"):
        want = fp8_bits(N.widen(before["src"], BF16) / np.float32(0.03125))
    _assert_same(b.raw(mem, "dst"), want)


@pytest.mark.parametrize(("shape", "group", "ts", "layout"),
                         [((7,), 128, BF16, "c"), ((3, 300), 128, FP32, "permuted"), ((2, 2, 40), 8, BF16, "padded"),
                          ((4, 16), 1, FP32, "c")])
def test_act_quant_equals_its_definition_bit_for_bit(shape, group, ts, layout):
    rng = np.random.default_rng(abs(hash((shape, group, ts, "act"))) % 2**32)
    b = Bench(rng)
    b.tensor("src", ts, shape, layout)
    b.tensor("dst", FP8, shape, fill=False)
    b.tensor("scale", FP32, shape[:-1] + (blocks(shape[-1], group),), fill=False)
    mem, before = b.run("act_quant", {"dst": "dst", "scale": "scale", "src": "src", "group": group})
    codes, scale = N.act_quant(N.widen(before["src"], ts), group)
    _assert_same(b.raw(mem, "dst"), codes)
    _assert_same(N.widen(b.raw(mem, "scale"), FP32), scale)


def _gemm_bench(ta=BF16, tb=FP8, tsa=FP32, sa_shape=(2, 1), sb_shape=(1, 1)):
    b = Bench(np.random.default_rng(0))
    b.tensor("a", ta, (2, 64))
    b.tensor("b", tb, (64, 32))
    b.tensor("sa", tsa, sa_shape)
    b.tensor("sb", FP32, sb_shape)
    b.tensor("dst", FP32, (2, 32), fill=False)
    return b


@pytest.mark.parametrize(("bench", "imms", "message"), [
    (_gemm_bench(tb=BF16), {}, "operand b (b) is bf16, expected fp8_e4m3"),
    (_gemm_bench(ta=FP32), {}, "operand a (a) is fp32, expected bf16 or fp8_e4m3"),
    (_gemm_bench(tsa=BF16), {}, "operand sa (sa) is bf16, expected fp32"),
    (_gemm_bench(sa_shape=(2, 2)), {}, "operand sa (sa) has shape [2, 2], expected [2, 1]"),
    (_gemm_bench(), {"block_k": 32}, "operand sa (sa) has shape [2, 1], expected [2, 2]"),
    (_gemm_bench(sb_shape=(1, 2)), {"block_n": 128}, "operand sb (sb) has shape [1, 2], expected [1, 1]"),
    (_gemm_bench(), {"block_k": 0}, "block_k=0 must be >= 1"),
])
def test_gemm_fp8_operand_errors_are_one_line(bench, imms, message):
    ops = {"dst": "dst", "a": "a", "b": "b", "sa": "sa", "sb": "sb", **imms}
    with pytest.raises(ExecutionError) as e:
        bench.run("gemm_fp8", ops)
    assert message in str(e.value) and "\n" not in str(e.value)
