"""The sn40l policies: fused dataflow kernels, the unfused and software-orchestrated variants,
the SRAM / HBM / DDR memory plan, and bit-exact values on the functional executor."""

import dataclasses

import numpy as np
import pytest

from opbsim.compiler import Source, Target, compile_graph, run_passes
from opbsim.compiler.sn40l_memory import Lifetime, bandwidth_needs, first_fit, lifetimes, plan_memory
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.hardware.device_models.dataflow import DataflowModel
from opbsim.isa.types import DType, Space, Unit
from opbsim.workloads import Stage, build_model, get_preset

from ..compiler.harness import read, run_stage
from ..compiler.test_compiled_values import MIXED, bits_equal, small_llama, small_mixtral

SN40L = get_device("sn40l")
DECODE = Stage.decode(2, 16)


def compiled(policy="sn40l", *, layers=1, tp=1, model=None, device=SN40L, stage=DECODE):
    m = model or small_llama(layers)
    return compile_graph(build_model(m, stage, tp=tp), device, policy)


def launches(c):
    return [i for i in c.program.instructions if i.mnemonic == "launch"]


def test_the_sn40l_policy_fuses_a_decoder_layer_into_one_hardware_orchestrated_launch_of_the_whole_socket():
    c = compiled()
    names = [i.note for i in launches(c)]
    assert names == ["embed", "L0.attn_norm..L0.ffn", "final_norm..lm_head"]
    layer = launches(c)[1]
    assert (int(layer["pcus"]), int(layer["pmus"]), int(layer["hw"])) == (1040, 1040, 1)
    body = c.program.instructions[int(layer["body"]):int(layer["body"]) + int(layer["count"])]
    assert {i.unit for i in body} == {Unit.PCU}
    layer_of = c.placement.graph.layer_of
    assert {i.note for i in body} == {p.op.name for p in c.placement.ops if layer_of.get(p.op.name) == 0}


def test_the_unfused_variant_launches_one_kernel_per_operator_batched_over_requests():
    c = compiled("sn40l-unfused")  # one layer, two decoding requests
    names = [i.note for i in launches(c)]
    assert names == ["embed", "L0.attn_norm", "L0.qkv_proj", "L0.rope", "L0.kv_store",
                     "L0.attn_decode/gemm", "L0.attn_decode/softmax", "L0.attn_decode/gemm.2", "L0.o_proj",
                     "L0.ffn_norm/add", "L0.ffn_norm/rmsnorm", "L0.ffn/gemm", "L0.ffn/silu", "L0.ffn/mul",
                     "L0.ffn/gemm.2", "final_norm/add", "final_norm/rmsnorm", "lm_head"]
    attention = [i for i in launches(c) if i.note.startswith("L0.attn_decode/")]
    assert [int(i["count"]) for i in attention] == [2, 2, 2]  # scores, softmax, values: one per request each


def test_every_intermediate_of_the_unfused_variant_is_in_hbm_and_stays_in_sram_when_fused():
    fused, unfused = compiled(), compiled("sn40l-unfused")
    for name in ("L0.attn_decode.scores", "L0.attn_decode.probs.1", "L0.ffn.gate_up", "L0.ffn.act"):
        assert fused.buffers[name].space is Space.SRAM, name
        assert unfused.buffers[name].space is Space.HBM, name


def test_an_ops_kernel_splits_into_operators_in_dependency_order():
    from opbsim.compiler.ir import Draft, Kernel, View
    from opbsim.compiler.sn40l import operators

    def v(name):
        return View(name, Space.HBM, 0, DType.BF16, (1, 8))

    drafts = (Draft("scale", Unit.PCU, (v("acc"), v("zero"), 1.0)),
              Draft("gather", Unit.PCU, (v("w0"), v("t"), v("i"))),
              Draft("scatter_add", Unit.PCU, (v("acc"), v("y0"), v("i"), v("w0"))),
              Draft("gather", Unit.PCU, (v("w1"), v("t"), v("i"))),
              Draft("scatter_add", Unit.PCU, (v("acc"), v("y1"), v("i"), v("w1"))),
              Draft("cvt", Unit.PCU, (v("out"), v("acc"))))
    split = operators(Kernel("L0.combine", Unit.PCU, drafts, frozenset(), frozenset()))
    assert [(k.op, [d.mnemonic for d in k.drafts]) for k in split] == [
        ("L0.combine/scale", ["scale"]), ("L0.combine/gather", ["gather", "gather"]),
        ("L0.combine/scatter_add", ["scatter_add", "scatter_add"]),  # an accumulation in order: one operator
        ("L0.combine/cvt", ["cvt"])]
    assert {d.note for k in split for d in k.drafts} == {"L0.combine"}


@pytest.mark.parametrize("policy,hw", [("sn40l", 1), ("sn40l-sw", 0), ("sn40l-unfused", 1), ("sn40l-unfused-sw", 0)])
def test_the_sw_variants_are_software_orchestrated(policy, hw):
    assert {int(i["hw"]) for i in launches(compiled(policy))} == {hw}


def test_streams_inside_a_fused_kernel_live_in_sram_and_weights_and_kv_caches_in_hbm():
    fused, unfused = compiled(), compiled("sn40l-unfused")
    for name in ("L0.qkv", "L0.x_norm", "L0.attn"):
        assert fused.buffers[name].space is Space.SRAM, name
        assert unfused.buffers[name].space is Space.HBM, name  # crosses kernels when unfused
    for name in ("L0.w_qkv", "L0.k_cache", "embed_tokens", "logits"):
        assert fused.buffers[name].space is Space.HBM, name


def test_buffers_with_disjoint_lifetimes_share_addresses_and_overlapping_ones_do_not():
    a, b, c = Lifetime("a", 0, 1, 512, 512, False), Lifetime("b", 2, 3, 512, 512, False), \
        Lifetime("c", 1, 2, 256, 256, False)
    where, footprint = first_fit([a, b, c])
    assert where["a"] == where["b"]
    assert footprint == 512 + 256
    assert not (where["c"] < where["a"] + 512 and where["a"] < where["c"] + 256)


def test_an_unfused_two_layer_stage_reuses_the_first_layers_activation_addresses():
    c = compiled("sn40l-unfused", layers=2)
    assert c.buffers["L0.qkv"].base_B == c.buffers["L1.qkv"].base_B


def test_inputs_and_results_live_the_whole_program_and_kernel_streams_only_their_kernel():
    kernels = run_passes(Source(build_model(small_llama(2), DECODE), Target(SN40L, "sn40l")), "fuse")
    lives = lifetimes(kernels)
    end = len(kernels.kernels) - 1
    assert (lives["L0.w_qkv"].first, lives["L0.w_qkv"].last) == (0, end)  # read first: an input
    assert lives["logits"].last == end  # written last: a result
    assert lives["L1.qkv"].internal and not lives["L0.ffn_out"].internal  # L0.ffn_out feeds layer 1


def test_when_hbm_overflows_the_buffers_with_the_smallest_bandwidth_need_move_to_ddr_first():
    kernels = run_passes(Source(build_model(small_llama(2), DECODE), Target(SN40L, "sn40l")), "fuse")
    hbm = {n: v for n, v in kernels.buffers.items() if v.space is Space.HBM}
    full = first_fit([it for n, it in lifetimes(kernels).items() if n in hbm])[1]
    spilled = plan_memory(kernels, hbm_budget_B=full // 2)
    moved = {n for n, v in spilled.buffers.items() if v.space is Space.DDR}
    kept = {n for n, v in spilled.buffers.items() if v.space is Space.HBM}
    assert moved and kept
    need = bandwidth_needs(kernels, lifetimes(kernels))
    assert max(need[n] for n in moved) <= min(need[n] for n in kept)
    assert first_fit([it for n, it in lifetimes(spilled).items() if n in kept])[1] <= full // 2


def test_a_stage_that_fits_neither_hbm_nor_ddr_is_an_input_error():
    tiny = dataclasses.replace(SN40L, name="tiny", memories=tuple(
        dataclasses.replace(m, capacity_B=1024) if m.space is Space.DDR else m for m in SN40L.memories))
    kernels = run_passes(Source(build_model(small_llama(1), DECODE), Target(tiny, "sn40l")), "fuse")
    with pytest.raises(InputError, match=r"^does not fit: the buffers of this stage need .* GiB of ddr on tiny"):
        plan_memory(kernels, hbm_budget_B=0)


def test_a_run_longer_than_the_socket_has_units_is_cut_into_several_launches():
    small = dataclasses.replace(SN40L, name="small",
                                model=DataflowModel(dataclasses.replace(SN40L.model.params, pcus=4, pmus=6)))
    c = compiled(device=small)
    assert all(int(i["count"]) <= 4 for i in launches(c))
    assert sum(int(i["count"]) for i in launches(c)) == sum(int(i["count"]) for i in launches(compiled()))


def test_the_sn40l_policy_on_a_device_without_pcus_is_an_input_error():
    with pytest.raises(InputError, match="^policy sn40l needs a pcu unit, which device duplex lacks$"):
        compiled(device=get_device("duplex"))


def test_a_fused_program_costs_less_than_the_unfused_one_in_launches_and_hbm_traffic():
    from opbsim.emulator.engine import run

    model = dataclasses.replace(get_preset("llama-2-7b"), num_layers=2)
    stats = {p: run(compile_graph(build_model(model, Stage.decode(1, 256), tp=8), SN40L, p).program, SN40L)
             for p in ("sn40l", "sn40l-unfused")}
    hbm = {p: dict(s.bytes_by_space)[Space.HBM] for p, s in stats.items()}
    assert hbm["sn40l"] < hbm["sn40l-unfused"]
    assert stats["sn40l"].time_s < stats["sn40l-unfused"].time_s


@pytest.mark.parametrize("policy", ["sn40l", "sn40l-unfused"])
@pytest.mark.parametrize("model", [small_mixtral(2), small_llama(2)], ids=["mixtral-shaped", "llama-shaped"])
def test_a_reduced_size_fused_stage_runs_on_the_functional_executor_bit_exactly(policy, model):
    ref, memory, c = run_stage(model, MIXED, device="sn40l", policy=policy)
    for name in ("L1.k_cache", "L1.v_cache", "logits"):  # results and inputs; transients may share addresses
        assert bits_equal(read(memory, c, name).reshape(ref[name].shape), ref[name]), name
    if model.is_moe:
        for layer in (0, 1):
            assert np.array_equal(read(memory, c, f"L{layer}.topk_ids", DType.I32), ref[f"L{layer}.topk_ids"])


def test_under_tensor_parallelism_a_decoder_layer_is_one_kernel_with_its_all_reduces_as_stages():
    c = compiled(tp=2)
    assert [i.note for i in launches(c)] == ["embed", "L0.attn_norm..L0.ffn_all_reduce",
                                             "final_norm..logits_all_gather"]
    layer = launches(c)[1]
    body = c.program.instructions[int(layer["body"]):int(layer["body"]) + int(layer["count"])]
    assert [i.note for i in body if i.mnemonic == "allreduce"] == ["L0.attn_all_reduce", "L0.ffn_all_reduce"]
    assert {int(i["sync"]) for i in launches(c)} == {2}  # the two sockets end every kernel together
    unfused = compiled("sn40l-unfused", tp=2)
    alone = [i for i in launches(unfused) if i.note.endswith("all_reduce")]
    assert [int(i["count"]) for i in alone] == [1, 1]  # a kernel of its own each


@pytest.mark.parametrize("model", [small_llama(2), small_mixtral(2)], ids=["llama-shaped", "mixtral-shaped"])
def test_collectives_inside_fused_kernels_give_the_bits_of_collectives_as_kernels_of_their_own(model):
    from opbsim.emulator.datamem import DataMemory
    from opbsim.emulator.functional import execute_group
    from opbsim.isa import numerics as N

    from ..compiler.harness import random_bf16, weights_for

    stage, tp = Stage.decode(2, 16), 2
    results = {}
    for policy in ("sn40l", "sn40l-unfused"):
        c = compile_graph(build_model(model, stage, tp=tp), SN40L, policy)
        rng = np.random.default_rng(7)
        memories = []
        for _ in range(tp):
            mem = DataMemory({m.space: m.capacity_B for m in SN40L.memories})
            for name, values in sorted(weights_for(c, model, rng)):
                mem.write_raw(c.buffers[name].descriptor(), N.store(values, DType.BF16))
            for name in sorted(n for n in c.buffers if n.endswith(("k_cache", "v_cache"))):
                mem.write_raw(c.buffers[name].descriptor(), N.store(random_bf16(rng, c.buffers[name].shape),
                                                                     DType.BF16))
            mem.write_raw(c.buffers["token_ids"].descriptor(), np.arange(stage.tokens, dtype=np.int32))
            for name, data in c.constants.items():
                mem.write_raw(c.buffers[name].descriptor(), data)
            memories.append(mem)
        execute_group(c.program, memories)
        results[policy] = [read(m, c, "logits.gathered") for m in memories]
    for fused, unfused in zip(results["sn40l"], results["sn40l-unfused"]):
        assert bits_equal(fused, unfused)
