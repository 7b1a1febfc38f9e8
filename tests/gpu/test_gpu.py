"""On a real GPU (PyCUDA, or CuPy where PyCUDA is missing): every kernel equals numerics.py and
every layer's definitions, run as kernels, the numerics definition, bit for bit; the timing
harness measures. Skipped, with the reason, where pycuda / cupy or a GPU is missing."""

from __future__ import annotations

import pytest

from opbsim.emulator.validation.gpu_layers import layer_case, run_layer
from opbsim.emulator.validation.gqa import GQAConfig
from opbsim.emulator.validation.moe import MoEConfig
from opbsim.reference.checks import CHECKS, run_checks

pytestmark = pytest.mark.gpu

LAYERS = {
    "moe": ("moe", MoEConfig(tokens=32, hidden=512, ffn=1024, experts=8, top_k=2)),
    "moe-shared": ("moe-shared", MoEConfig(tokens=16, hidden=256, ffn=512, experts=8, top_k=2, shared=1)),
    "llama3-decode": ("gqa-decode", GQAConfig(hidden=1024, heads=8, kv_heads=2, head_dim=128,
                                              cache_lens=(100, 517, 0), theta=5e5)),
    "llama3-prefill": ("gqa-prefill", GQAConfig(hidden=1024, heads=8, kv_heads=2, head_dim=128,
                                                prefill_tokens=70, theta=5e5)),
}


@pytest.mark.parametrize("check", list(CHECKS))
def test_every_kernel_equals_numerics_bit_for_bit(gpu_ops, check):
    bad = [line for c in run_checks(gpu_ops, 0, (check,)) if not c.bit_exact for line in c.lines()]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("label", list(LAYERS))
def test_every_layer_equals_the_numerics_definition_bit_for_bit(gpu_ops, label):
    name, cfg = LAYERS[label]
    bad = [line for c in run_layer(gpu_ops, layer_case(name, cfg, 0)) if not c.bit_exact for line in c.lines()]
    assert not bad, "\n".join(bad)


def test_the_timing_harness_measures_a_gemm_and_an_attention_step(gpu_ops):
    from opbsim.reference.timing import time_attention, time_gemm

    g = time_gemm(gpu_ops, tokens=16, hidden=1024, ffn=2048, repeats=5)
    assert g.seconds > 0 and g.flops == 2 * 16 * 1024 * 2048
    a = time_attention(gpu_ops, batch=2, kv_heads=2, group=4, ctx=256, head_dim=128, repeats=5)
    assert a.seconds > 0
