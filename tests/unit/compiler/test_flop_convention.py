"""One FLOP convention: a graph op's estimated FLOPs are what its compiled instructions count.

Both read the ISA table's ``ops_per_element`` (isa/spec.py), so the Op/B the placement policies see
and the work the timing model charges cannot drift apart. Two exceptions, by design: a collective's
estimate counts the reduction's adds, which a collective instruction does on the link, not a unit;
a causal prefill attention's estimate counts the attended (query, key) pairs, while its instructions
compute the whole score square and mask it.
"""

from __future__ import annotations

import dataclasses

import pytest

from opbsim.compiler import compile_graph
from opbsim.emulator.work import work_of
from opbsim.hardware import get_device
from opbsim.isa.spec import TABLE
from opbsim.workloads import PrefillChunk, Stage, build_model, get_preset
from opbsim.workloads.models import FFNAct
from opbsim.workloads.ops import OpKind
from opbsim.workloads.primitives import ACT_FLOPS

_UNCOUNTED = {"launch", "wait", "signal", "halt"}
_STAGES = {"decode": Stage.decode(8, 64), "mixed": Stage(prefill=(PrefillChunk(24),), decode_ctx_tokens=(40,) * 3)}


def compiled_flops(compiled) -> dict[str, int]:
    out: dict[str, int] = {}
    for op, inst in zip(compiled.op_of, compiled.program.instructions):
        if op and inst.mnemonic not in _UNCOUNTED:
            w = work_of(compiled.program, inst)
            out[op] = out.get(op, 0) + w.matrix_flops + w.vector_flops
    return out


@pytest.mark.parametrize("stage", sorted(_STAGES))
@pytest.mark.parametrize("model, device, policy", [
    ("mixtral-8x7b", "h100", "xpu-only"), ("mixtral-8x7b", "duplex", "duplex"), ("opt-66b", "h100", "xpu-only"),
    ("glam-143b", "duplex", "duplex"), ("llama-3-70b", "duplex", "duplex"), ("deepseek-moe-16b", "h100", "xpu-only"),
])
def test_every_op_but_the_collectives_estimates_the_flops_its_instructions_count(model, device, policy, stage):
    m = dataclasses.replace(get_preset(model), num_layers=2)
    graph = build_model(m, _STAGES[stage], tp=4)
    counted = compiled_flops(compile_graph(graph, get_device(device), policy))
    for op in graph.ops:
        if op.kind in (OpKind.ALL_REDUCE, OpKind.ALL_GATHER) or op.params.get("phase") == "prefill":
            continue
        assert counted.get(op.name, 0) == op.estimates.flops, op.name


def test_the_activation_flops_are_the_isa_table_s_per_element_operations():
    ops = {s.mnemonic: s.ops_per_element for s in TABLE}
    assert ACT_FLOPS[FFNAct.SWIGLU] == ops["silu"] + ops["mul"]
    assert ACT_FLOPS[FFNAct.GEGLU] == ops["gelu"] + ops["mul"]
    assert ACT_FLOPS[FFNAct.GELU] == ops["gelu"] and ACT_FLOPS[FFNAct.RELU] == ops["relu"]
