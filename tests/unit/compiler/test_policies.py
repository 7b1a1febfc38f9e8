"""Placement policies: the Duplex rules, the co-processing greedy, the oracle."""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.compiler import Source, Target, run_passes
from opbsim.compiler.policies import policy_names, split_experts
from opbsim.hardware import get_device
from opbsim.isa.types import Unit
from opbsim.workloads import PrefillChunk, Stage, build_model, get_preset
from opbsim.workloads.routing_trace import TraceRouting

DUPLEX = get_device("duplex")
MIXTRAL = get_preset("mixtral-8x7b")


def placement(stage, policy, *, model=MIXTRAL, layers=1, device=DUPLEX, routing=None):
    m = dataclasses.replace(model, num_layers=layers)
    return run_passes(Source(build_model(m, stage, routing=routing, tp=4), Target(device, policy)), "place")


def units(p) -> dict[str, Unit]:
    return {o.op.name: o.unit for o in p.ops}


DECODE = Stage.decode(64, 1024)
MIXED = Stage(prefill=(PrefillChunk(512),), decode_ctx_tokens=(1024,) * 63)


def test_duplex_puts_decode_attention_on_logic_pim_and_the_dense_linears_on_the_xpu():
    u = units(placement(DECODE, "duplex"))
    assert u["L0.attn_decode"] is Unit.PIM
    for op in ("L0.qkv_proj", "L0.o_proj", "L0.router", "lm_head"):
        assert u[op] is Unit.XPU, op


def test_duplex_without_co_processing_runs_experts_on_pim_in_decode_only_stages_and_on_the_xpu_in_mixed_ones():
    decode = units(placement(DECODE, "duplex-no-pe"))
    mixed = units(placement(MIXED, "duplex-no-pe"))
    experts = [n for n in decode if ".expert." in n]
    assert experts and all(decode[n] is Unit.PIM for n in experts)
    assert all(mixed[n] is Unit.XPU for n in mixed if ".expert." in n)
    assert mixed["L0.attn_prefill.0"] is Unit.XPU and mixed["L0.attn_decode"] is Unit.PIM


def test_bank_pim_offloads_only_decode_attention():
    u = units(placement(MIXED, "bank-pim", device=get_device("bank-pim")))
    assert [n for n, unit in u.items() if unit is Unit.PIM] == ["L0.attn_decode"]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 96), st.integers(0, 2**31 - 1))
def test_the_co_processing_greedy_finds_the_best_split_among_fewest_token_first_prefixes(tokens, seed):
    rng = np.random.default_rng(seed)
    ids = np.argsort(rng.random((tokens, 8)), axis=1)[:, :2].astype(np.int32)
    routing = TraceRouting(8, 2, {0: ids})
    analysis = run_passes(Source(build_model(dataclasses.replace(MIXTRAL, num_layers=1), Stage.decode(tokens, 512),
                                             routing=routing, tp=4), Target(DUPLEX, "duplex")), "analyze")
    experts = sorted((a for a in analysis.ops if ".expert." in a.op.name),
                     key=lambda a: (a.op.params["tokens"], a.op.name))
    moved = split_experts(experts)

    def makespan(on_pim):
        return max(sum(a.cost(Unit.XPU).time_s for a in experts if a.op.name not in on_pim),
                   sum(a.cost(Unit.PIM).time_s for a in experts if a.op.name in on_pim))

    best = min(makespan({a.op.name for a in experts[:n]}) for n in range(len(experts) + 1))
    assert makespan(moved) == pytest.approx(best, rel=1e-12)
    assert moved == {a.op.name for a in experts[:len(moved)]}  # always a fewest-token-first prefix


@pytest.mark.parametrize("stage", [DECODE, MIXED], ids=["decode", "mixed"])
def test_the_oracle_is_never_slower_than_any_policy_under_the_same_cost_model(stage):
    def total(p):
        return sum(o.analysis.cost(o.unit).time_s for o in p.ops)

    from opbsim.errors import InputError

    oracle = total(placement(stage, "oracle"))
    for name in policy_names():
        try:
            other = placement(stage, name)
        except InputError:  # a policy for units Duplex lacks (the SN40L PCUs)
            continue
        assert oracle <= total(other) * (1 + 1e-12), name


def test_a_policy_that_needs_pim_on_a_gpu_is_an_input_error():
    from opbsim.errors import InputError

    with pytest.raises(InputError, match="^policy duplex needs a pim unit, which device h100 lacks$"):
        placement(DECODE, "duplex", device=get_device("h100"))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 96), st.integers(0, 2**31 - 1))
def test_with_sections_the_greedy_moves_whole_bank_bundle_sections_and_finds_the_best_section_prefix(tokens, seed):
    rng = np.random.default_rng(seed)
    ids = np.argsort(rng.random((tokens, 8)), axis=1)[:, :2].astype(np.int32)
    analysis = run_passes(Source(build_model(dataclasses.replace(MIXTRAL, num_layers=1), Stage.decode(tokens, 512),
                                             routing=TraceRouting(8, 2, {0: ids}), tp=4), Target(DUPLEX, "duplex")),
                          "analyze")
    experts = [a for a in analysis.ops if ".expert." in a.op.name]
    moved = split_experts(experts, sections=4)
    sections = {}
    for a in experts:
        sections.setdefault(a.op.params["expert"] % 4, []).append(a)
    for group in sections.values():  # a section is on one unit only
        assert len({a.op.name in moved for a in group}) == 1
    order = sorted(sections.values(), key=lambda g: (sum(a.op.params["tokens"] for a in g), min(a.op.name for a in g)))

    def makespan(on_pim):
        return max(sum(a.cost(Unit.XPU).time_s for a in experts if a.op.name not in on_pim),
                   sum(a.cost(Unit.PIM).time_s for a in experts if a.op.name in on_pim))

    best = min(makespan({a.op.name for g in order[:n] for a in g}) for n in range(len(order) + 1))
    assert makespan(moved) == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("device, policy", [("duplex", "duplex"), ("h100", "xpu-only"), ("sn40l", "sn40l"),
                                            ("sn40l", "sn40l-unfused")])
def test_every_instruction_carries_the_decoder_layer_of_its_op_and_none_outside_the_layers(device, policy):
    from opbsim.compiler import compile_graph

    graph = build_model(dataclasses.replace(MIXTRAL, num_layers=2), Stage.decode(4, 64), tp=4)
    compiled = compile_graph(graph, get_device(device), policy)
    layers = graph.layer_of
    assert len(compiled.layer_of) == len(compiled.program.instructions)
    assert set(compiled.layer_of) == {None, 0, 1}
    for inst, layer in zip(compiled.program.instructions, compiled.layer_of):
        first_op = inst.note.split("..")[0].split("/")[0].split("#")[0]
        assert layer == layers.get(first_op), inst


def test_duplex_keeps_gqa_decode_attention_on_logic_pim_but_runs_many_head_mla_decode_on_the_xpu():
    """MLA's absorbed decode attention at 128 heads per device has Op/B ~229: compute-bound on Logic-PIM
    and faster on the xPU by the roofline costs; GQA's (Op/B = group size) stays on Logic-PIM."""
    import dataclasses

    from opbsim.compiler import Source, Target, run_passes
    from opbsim.hardware import get_device
    from opbsim.isa.types import Unit
    from opbsim.workloads import Stage, get_preset
    from opbsim.workloads.graph import build_model

    def decode_attention(name):
        graph = build_model(dataclasses.replace(get_preset(name), num_layers=2), Stage.decode(32, 4096))
        placed = run_passes(Source(graph, Target(get_device("duplex"), "duplex")), "place")
        return next(p for p in placed.ops if p.op.name == "L0.attn_decode")

    mla, gqa = decode_attention("deepseek-v2"), decode_attention("mixtral-8x7b")
    assert mla.unit is Unit.XPU and "compute-bound on Logic-PIM" in mla.reason
    assert mla.analysis.cost(Unit.XPU).time_s < mla.analysis.cost(Unit.PIM).time_s
    assert gqa.unit is Unit.PIM
