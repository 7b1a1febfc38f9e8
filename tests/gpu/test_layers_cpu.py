"""The layer definitions interpreted on an ``Ops`` (emulator/ops_values.py), run on numerics.py and
on the host build of the kernels, equal the numerics definition bit for bit: the interpreter and
the runner's plumbing are right before any GPU runs them. No GPU needed."""

from __future__ import annotations

import pytest

from opbsim.emulator.validation.gpu_layers import layer_case, run_layer
from opbsim.emulator.validation.gqa import GQAConfig
from opbsim.emulator.validation.moe import MoEConfig
from opbsim.reference.numpy_ops import NumpyOps

CASES = {
    "moe": MoEConfig(tokens=16, hidden=64, ffn=96, experts=8, top_k=2),
    "moe-shared": MoEConfig(tokens=9, hidden=64, ffn=96, experts=4, top_k=2, shared=1, shared_ffn=64),
    "gqa-decode": GQAConfig(hidden=128, heads=8, kv_heads=2, head_dim=16, cache_lens=(5, 40, 0)),
    "gqa-prefill": GQAConfig(hidden=128, heads=8, kv_heads=2, head_dim=16, prefill_tokens=11),
}

KERNELS_USED = {
    "moe": {"opb_rmsnorm", "opb_gemm", "opb_softmax", "opb_topk", "opb_reduce", "opb_binary", "opb_gather",
            "opb_unary", "opb_scatter_add", "opb_cvt", "opb_copy4"},
    "moe-shared": {"opb_gemm", "opb_gemv", "opb_copy4"},
    "gqa-decode": {"opb_gemv", "opb_rope", "opb_scatter", "opb_softmax", "opb_copy4", "opb_binary"},
    "gqa-prefill": {"opb_gemm", "opb_rope", "opb_softmax", "opb_copy4"},
}


@pytest.fixture(scope="module")
def cases():
    return {name: layer_case(name, cfg, 0) for name, cfg in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_the_definitions_on_numerics_equal_the_numerics_definition(cases, name):
    bad = [line for c in run_layer(NumpyOps(), cases[name]) if not c.bit_exact for line in c.lines()]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("name", list(CASES))
def test_the_definitions_on_the_host_built_kernels_equal_the_numerics_definition(cases, host_ops, name):
    outs = run_layer(host_ops, cases[name])
    assert [o.name.split(":")[1] for o in outs] == list(cases[name].expected)
    bad = [line for c in outs if not c.bit_exact for line in c.lines()]
    assert not bad, "\n".join(bad)
    assert KERNELS_USED[name] <= set(host_ops.backend.launches)
