"""On a real GPU: the fp8 kernels at a DeepSeek-V3 expert's size equal the executor's fast path (itself
bit-exact to numerics_fp8, tests/unit/emulator/test_fp8_executor.py), and quant of a layer's
activations with 1 x 128 group scales equals numerics_fp8.quant. Skipped where there is no GPU."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.emulator.fp8_gemm import gemm_fp8
from opbsim.isa import numerics as N
from opbsim.isa.types import DType
from opbsim.reference.interface import FP32

pytestmark = pytest.mark.gpu


def _operands(m: int, k: int, n: int):
    rng = np.random.default_rng(m)
    x = rng.standard_normal((m, k)).astype(np.float32)
    sa = (np.abs(x.reshape(m, k // 128, 128)).max(axis=-1) / np.float32(448)).astype(np.float32)
    a = N.quant(x, sa, 128)
    w = N.quant(rng.standard_normal((n, k)).astype(np.float32), np.full((n, k // 128), 0.004, np.float32), 128)
    sb = rng.uniform(1e-3, 1e-2, (k // 128, -(-n // 128))).astype(np.float32)
    return x, sa, a, w, sb


@pytest.mark.parametrize(("m", "k", "n"), [(16, 7168, 2048), (130, 2048, 7168)])  # DeepSeek-V3 expert w1 / w2 shapes
def test_an_expert_sized_fp8_gemm_on_the_gpu_equals_the_executor(gpu_ops, m, k, n):
    _, sa, a, w, sb = _operands(m, k, n)
    want = N.store(gemm_fp8(a, w.T, sa, sb, 128, 128), DType.FP32)
    got = gpu_ops.gemm_fp8(gpu_ops.upload(a), gpu_ops.transpose(gpu_ops.upload(w)), gpu_ops.upload(sa),
                           gpu_ops.upload(sb), 128, 128, FP32)
    assert np.array_equal(gpu_ops.download(got).view(np.uint32), want.view(np.uint32))


def test_quant_of_a_layers_activations_on_the_gpu_equals_numerics(gpu_ops):
    x, sa, a, _, _ = _operands(64, 7168, 128)
    got = gpu_ops.download(gpu_ops.quant(gpu_ops.upload(x), gpu_ops.upload(sa), 128))
    assert np.array_equal(got, a)
