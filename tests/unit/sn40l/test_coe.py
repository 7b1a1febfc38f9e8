"""Composition of Experts: switching cost, the HBM expert cache, execution, footprint, memory limits."""

import dataclasses
import math

import pytest

from opbsim.compiler import compile_graph
from opbsim.emulator.coe import CoEConfig, ExpertCache, expert_times, policy_for, simulate_coe
from opbsim.emulator.engine import run
from opbsim.errors import InputError
from opbsim.hardware import get_node
from opbsim.workloads import PrefillChunk, Stage, build_model, get_preset

SN40L, H100, A100 = get_node("sn40l"), get_node("dgx-h100"), get_node("dgx-a100")
LLAMA = get_preset("llama-2-7b")
EXPERT_B = LLAMA.weight_bytes
CFG = CoEConfig(experts=150, batch=8, tokens=20, batches=64)


def test_an_expert_is_llama_2_7b_in_bf16():
    assert EXPERT_B == 2 * LLAMA.params_total
    assert 13.4e9 < EXPERT_B < 13.6e9  # ~13.5 GB [S]


@pytest.mark.parametrize("node", [SN40L, H100, A100], ids=lambda n: n.name)
def test_switching_one_expert_takes_its_bytes_over_the_nodes_copy_bandwidth(node):
    assert simulate_coe(node, CFG).switch_s == pytest.approx(EXPERT_B / (node.copy_GBps * 1e9))


def test_switching_on_sn40l_is_the_copy_bandwidth_ratio_faster_than_on_a_dgx():
    sn, h = simulate_coe(SN40L, CFG), simulate_coe(H100, CFG)
    assert h.switch_s / sn.switch_s == pytest.approx(SN40L.copy_GBps / H100.copy_GBps)


def test_the_lru_cache_evicts_the_least_recently_used_expert():
    cache = ExpertCache(2)
    assert [cache.use(e) for e in (1, 2, 1, 3, 2, 1)] == [False, False, True, False, False, False]
    assert cache.resident == (2, 1)  # 3 evicts 2, then 2 evicts 1, then 1 evicts 3
    cache = ExpertCache(2, warm=range(5))
    assert cache.resident == (0, 1) and cache.use(1) and not cache.use(4) and cache.resident == (1, 4)


def test_an_expert_cache_without_a_slot_is_an_input_error():
    with pytest.raises(InputError, match="^an expert cache needs at least one slot, got 0$"):
        ExpertCache(0)


def test_hbm_slots_are_what_is_left_after_the_router_and_the_kv_caches():
    r = simulate_coe(H100, CFG)
    kv = LLAMA.kv_bytes(CFG.prompt_tokens + CFG.tokens) + CFG.batch * LLAMA.kv_bytes(CFG.prompt_tokens)
    assert r.cache_slots == (H100.hbm_B - LLAMA.weight_bytes - kv) // EXPERT_B == 49  # "~47" [S]


def test_experts_that_all_fit_in_hbm_never_switch():
    r = simulate_coe(H100, dataclasses.replace(CFG, experts=40))
    assert r.resident and r.switches_per_batch == 0 and r.switch_time_s == 0.0


def test_beyond_hbm_misses_follow_the_lru_hit_rate_of_uniform_picks():
    cfg = dataclasses.replace(CFG, experts=150, batches=512)
    r = simulate_coe(H100, cfg)
    expected = cfg.batch * (1 - r.cache_slots / cfg.experts)  # LRU over uniform picks hits slots / N
    assert r.switches_per_batch == pytest.approx(expected, rel=0.05)
    assert r.switch_time_s == pytest.approx(r.switches_per_batch * r.switch_s)


def test_a_batch_is_the_router_plus_switches_plus_a_prefill_and_tokens_minus_one_decodes_per_prompt():
    r = simulate_coe(SN40L, CFG)
    t = expert_times(SN40L, CFG)
    assert r.exec_time_s == pytest.approx(CFG.batch * (t.prefill_s + (CFG.tokens - 1) * t.decode_s))
    assert r.total_time_s == pytest.approx(t.router_s + r.switch_time_s + r.exec_time_s)


def test_expert_times_are_the_engines_times_of_compiled_tp8_programs():
    t = expert_times(H100, CFG)
    program = compile_graph(build_model(LLAMA, Stage(prefill=(PrefillChunk(CFG.prompt_tokens),)), tp=8),
                            H100.device, policy_for(H100)).program
    assert t.prefill_s == run(program, H100.device).time_s
    assert policy_for(SN40L) == "sn40l" and policy_for(H100) == "xpu-only"


def test_a_dgx_runs_out_of_memory_beyond_its_host_memory():
    limit = H100.store_B // EXPERT_B
    assert not simulate_coe(H100, dataclasses.replace(CFG, experts=limit)).out_of_memory
    oom = simulate_coe(H100, dataclasses.replace(CFG, experts=limit + 1))
    assert oom.out_of_memory and oom.total_time_s is None and oom.store_experts == limit


def test_a_dgx_serves_at_tp8_latency_only_the_experts_its_hbm_holds_an_sn40l_node_those_its_ddr_holds():
    held = SN40L.store_B // EXPERT_B  # 8 x 1.5 TB of DDR
    assert simulate_coe(SN40L, dataclasses.replace(CFG, experts=held)).nodes_needed == 1
    assert simulate_coe(SN40L, dataclasses.replace(CFG, experts=held + 1)).nodes_needed == 2
    h = simulate_coe(H100, dataclasses.replace(CFG, experts=held))
    assert h.nodes_needed == math.ceil(held / h.cache_slots)


@pytest.mark.parametrize("field,value,message", [
    ("experts", 0, "experts must be a positive integer, got 0"),
    ("tokens", True, "tokens must be a positive integer, got True"),
])
def test_bad_coe_parameters_are_input_errors(field, value, message):
    with pytest.raises(InputError, match=f"^{message}$"):
        dataclasses.replace(CFG, **{field: value})


def test_a_node_whose_hbm_cannot_hold_one_expert_is_an_input_error():
    small = dataclasses.replace(SN40L, name="one-socket", devices=1,
                                device=dataclasses.replace(SN40L.device, memories=tuple(
                                    dataclasses.replace(m, capacity_B=16 * 2**30) if m.space.name == "HBM" else m
                                    for m in SN40L.device.memories)))
    with pytest.raises(InputError, match=r"^node one-socket: .* GB of HBM left after the router and the KV caches "
                                         r"cannot hold one llama-2-7b expert \(13\.5 GB\)$"):
        simulate_coe(small, CFG)
