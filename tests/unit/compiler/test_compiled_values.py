"""A compiled stage on the functional executor equals the numerics definition bit for bit."""

import dataclasses

import numpy as np
import pytest

from opbsim.isa.types import DType
from opbsim.workloads import get_preset
from opbsim.workloads.stage import PrefillChunk, Stage

from .harness import read, run_stage

MIXED = Stage(prefill=(PrefillChunk(5, past_tokens=0), PrefillChunk(3, past_tokens=4)),
              decode_ctx_tokens=(7, 9, 4))


def small_mixtral(layers=1):
    return dataclasses.replace(get_preset("mixtral-8x7b"), hidden_size=64, num_layers=layers, num_heads=4,
                               num_kv_heads=2, head_dim=16, expert_ffn=96, num_experts=4, vocab_size=128)


def small_llama(layers=1):
    return dataclasses.replace(get_preset("llama-3-70b"), hidden_size=64, num_layers=layers, num_heads=8,
                               num_kv_heads=2, head_dim=8, dense_ffn=80, vocab_size=96)


def bits_equal(a, b) -> bool:
    return np.array_equal(np.asarray(a, np.float32).view(np.uint32), np.asarray(b, np.float32).view(np.uint32))


@pytest.mark.parametrize("policy,device", [("duplex", "duplex"), ("xpu-only", "h100"), ("bank-pim", "bank-pim")])
def test_a_mixtral_shaped_moe_stage_compiles_to_the_numerics_definition_bit_for_bit(policy, device):
    model = small_mixtral(layers=2)
    ref, memory, compiled = run_stage(model, MIXED, device=device, policy=policy)
    for name in ("L0.ffn_out", "L1.ffn_out", "L1.k_cache", "L1.v_cache", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name
    for layer in (0, 1):  # the routing the program was specialised on is the one it computes
        ids = read(memory, compiled, f"L{layer}.topk_ids", DType.I32)
        assert np.array_equal(ids, ref[f"L{layer}.topk_ids"])


def test_a_llama_shaped_gqa_stage_compiles_to_the_numerics_definition_bit_for_bit():
    model = small_llama(layers=2)
    ref, memory, compiled = run_stage(model, MIXED, device="duplex", policy="duplex")
    for name in ("L0.ffn_out", "L1.ffn_out", "L1.k_cache", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name


def small_opt(layers=2):
    """OPT-shaped: MHA, LayerNorm with bias, qkv bias, ReLU FFN, learned positions, tied embeddings."""
    return dataclasses.replace(get_preset("opt-66b"), hidden_size=64, num_layers=layers, num_heads=4, num_kv_heads=4,
                               head_dim=16, dense_ffn=96, vocab_size=100, learned_positions=32)


def small_glam(layers=2):
    """GLaM-shaped: GELU 2-matrix experts every second layer, no rotary positions."""
    return dataclasses.replace(get_preset("glam-143b"), hidden_size=64, num_layers=layers, num_heads=4,
                               num_kv_heads=4, head_dim=16, dense_ffn=96, expert_ffn=80, num_experts=6,
                               vocab_size=100)


def small_grok(layers=2):
    """Grok-1-shaped: GeGLU experts (8, top-2), GQA."""
    return dataclasses.replace(get_preset("grok-1"), hidden_size=64, num_layers=layers, num_heads=8, num_kv_heads=2,
                               head_dim=8, expert_ffn=80, vocab_size=100)


@pytest.mark.parametrize("make", [small_opt, small_glam, small_grok], ids=["opt", "glam", "grok"])
def test_opt_glam_and_grok_shaped_stages_compile_to_the_numerics_definition_bit_for_bit(make):
    model = make()
    ref, memory, compiled = run_stage(model, MIXED, device="duplex", policy="duplex")
    for name in ("L0.ffn_out", "L1.ffn_out", "L1.k_cache", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name


@pytest.mark.slow
def test_a_full_size_mixtral_layer_for_8_decode_tokens_compiles_to_the_numerics_definition_bit_for_bit():
    model = dataclasses.replace(get_preset("mixtral-8x7b"), num_layers=1)
    stage = Stage.decode(8, 64)
    ref, memory, compiled = run_stage(model, stage, device="duplex", policy="duplex")
    for name in ("L0.ffn_out", "L0.k_cache", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name


def small_deepseek_v2_lite(layers=2):
    """DeepSeek-V2-Lite-shaped: MLA without a query LoRA, shared experts, a dense first layer."""
    from opbsim.workloads.models import MLA

    return dataclasses.replace(get_preset("deepseek-v2-lite"), hidden_size=64, num_layers=layers, num_heads=4,
                               num_kv_heads=4, head_dim=24, vocab_size=100, dense_ffn=96, expert_ffn=32,
                               num_experts=8, top_k=3, shared_ffn=32,
                               mla=MLA(q_lora_rank=0, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
                                       v_head_dim=16))


def small_deepseek_v2(layers=2):
    """DeepSeek-V2-shaped: MLA with a query LoRA (its own RMSNorm)."""
    from opbsim.workloads.models import MLA

    return dataclasses.replace(small_deepseek_v2_lite(layers), mla=MLA(q_lora_rank=24, kv_lora_rank=32,
                                                                       qk_nope_head_dim=16, qk_rope_head_dim=8,
                                                                       v_head_dim=16))


@pytest.mark.parametrize("make", [small_deepseek_v2_lite, small_deepseek_v2], ids=["v2-lite", "v2"])
@pytest.mark.parametrize("policy,device", [("duplex", "duplex"), ("xpu-only", "h100")])
def test_mla_stages_absorbed_decode_and_expanded_prefill_compile_to_the_numerics_definition_bit_for_bit(
        make, policy, device):
    model = make()
    ref, memory, compiled = run_stage(model, MIXED, device=device, policy=policy)
    for name in ("L0.ffn_out", "L1.ffn_out", "L1.kv_cache", "L1.q_latent", "L1.attn", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(-1)[:ref[name].size], ref[name].reshape(-1)), name
    assert np.array_equal(read(memory, compiled, "L1.topk_ids", DType.I32), ref["L1.topk_ids"])


@pytest.mark.parametrize("make", [small_deepseek_v2_lite, small_deepseek_v2], ids=["v2-lite", "v2"])
def test_mla_numerics_definition_is_within_bf16_rounding_of_float64_attention(make):
    """Bound: the attention output is bf16 and its inputs (q, latents, expanded K/V or the latent
    query) each pass through bf16 once or twice (2^-9 each); measured 3.0e-3 (v2-lite) and 5.7e-3
    (v2) of the largest output, bounded here by 2^-6 (1.6e-2)."""
    from opbsim.emulator.golden_mla import mla_attention
    from opbsim.layers.stage_rows import requests

    model = make()
    ref, memory, compiled = run_stage(model, MIXED, device="h100", policy="xpu-only")
    a, H, L = model.mla, model.num_heads, "L1"
    names = ("w_q_a", "w_q_a_norm", "w_q_b", "w_kv_a", "w_kv_a_norm", "w_kv_b") if a.q_lora_rank else \
        ("w_q", "w_kv_a", "w_kv_a_norm", "w_kv_b")
    w = {n: read(memory, compiled, f"{L}.{n}").astype(np.float64).reshape(compiled.buffers[f"{L}.{n}"].shape)
         for n in names}
    reqs = requests(MIXED)
    cache = ref[f"{L}.kv_cache"].reshape(len(reqs), -1, a.cache_dim).astype(np.float64)
    past = [cache[i, :r.past] for i, r in enumerate(reqs)]
    want = mla_attention(ref[f"{L}.x_norm"].astype(np.float64), w, a, H, reqs, past, model.rope_theta,
                         model.norm_eps, model.rope_scaling)
    got = ref[f"{L}.attn"].astype(np.float64).reshape(want.shape)
    assert np.abs(want).max() > 0.01  # the attention output is not vacuous
    assert np.abs(got - want).max() <= 2.0**-6 * np.abs(want).max()


def small_olmoe(layers=2):
    """OLMoE-shaped: q/k RMSNorm over the whole query and key widths, 8 of many small experts."""
    return dataclasses.replace(get_preset("olmoe-1b-7b-0924"), hidden_size=64, num_layers=layers, num_heads=4,
                               num_kv_heads=4, head_dim=16, expert_ffn=32, num_experts=16, top_k=8, vocab_size=100)


def small_qwen3_moe(layers=2):
    """Qwen3-MoE-shaped: q/k RMSNorm per head (one head_dim-wide weight), GQA, renormalised top-k."""
    from opbsim.workloads.models import QKNorm

    return dataclasses.replace(small_mixtral(layers), num_heads=8, num_kv_heads=2, head_dim=8,
                               qk_norm=QKNorm.PER_HEAD, num_experts=16, top_k=8, expert_ffn=24,
                               norm_topk_prob=True)


@pytest.mark.parametrize("make", [small_olmoe, small_qwen3_moe], ids=["olmoe", "qwen3-moe"])
@pytest.mark.parametrize("policy,device", [("duplex", "duplex"), ("xpu-only", "h100")])
def test_qk_norm_stages_compile_to_the_numerics_definition_bit_for_bit(make, policy, device):
    model = make()
    ref, memory, compiled = run_stage(model, MIXED, device=device, policy=policy)
    for name in ("L0.ffn_out", "L1.ffn_out", "L1.k_cache", "L1.v_cache", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name


def _routed(model, **router):
    from opbsim.workloads.models import Router

    return dataclasses.replace(model, router=Router(**router))


def small_deepseek_v3_router(layers=2):
    """DeepSeek-V3's router on a small MoE: sigmoid scores, a correction bias, 4 groups of 4 experts
    of which 2 stay, top-4 renormalised (plus 1e-20) and scaled by 2.5."""
    from opbsim.workloads.models import RouterScoring

    return _routed(dataclasses.replace(small_mixtral(layers), num_experts=16, top_k=4, norm_topk_prob=True),
                   scoring=RouterScoring.SIGMOID, correction_bias=True, n_group=4, topk_group=2,
                   routed_scaling_factor=2.5)


def small_gpt_oss_router(layers=2):
    """gpt-oss's router: a biased router projection, the top-4 logits, a softmax over those four."""
    from opbsim.workloads.models import RouterScoring

    return _routed(dataclasses.replace(small_mixtral(layers), num_experts=8, top_k=4),
                   scoring=RouterScoring.SOFTMAX_TOPK, bias=True)


def small_llama4_router(layers=2):
    """Llama 4's router choice: the top-1 logit, its sigmoid as the weight (on the output here)."""
    from opbsim.workloads.models import RouterScoring

    return _routed(dataclasses.replace(small_mixtral(layers), num_experts=8, top_k=1), scoring=RouterScoring.SIGMOID)


@pytest.mark.parametrize("make", [small_deepseek_v3_router, small_gpt_oss_router, small_llama4_router],
                         ids=["deepseek-v3", "gpt-oss", "llama4"])
@pytest.mark.parametrize("policy,device", [("duplex", "duplex"), ("xpu-only", "h100")])
def test_2026_routers_compile_to_the_numerics_definition_bit_for_bit(make, policy, device):
    model = make()
    ref, memory, compiled = run_stage(model, MIXED, device=device, policy=policy)
    for name in ("L0.topk_weights", "L1.topk_weights"):
        got = read(memory, compiled, name, DType.FP32)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name
    for name in ("L0.ffn_out", "L1.ffn_out", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name
    for layer in (0, 1):
        assert np.array_equal(read(memory, compiled, f"L{layer}.topk_ids", DType.I32), ref[f"L{layer}.topk_ids"])
    sums = ref["L1.topk_weights"].sum(axis=-1)  # the routers' own normalisations, so the check is not vacuous
    r = model.router
    want = r.routed_scaling_factor if model.norm_topk_prob else (1.0 if r.scoring.value == "softmax_topk" else None)
    if want is None:
        assert np.all((sums > 0) & (sums < 1))  # a sigmoid of one logit
    else:
        assert np.allclose(sums, want, rtol=1e-6)


def small_qwen_moe(layers=2):
    """Qwen1.5/2-MoE-shaped: a shared expert scaled by sigmoid(x w_gate) before the combine adds it."""
    return dataclasses.replace(get_preset("qwen1.5-moe-a2.7b"), hidden_size=64, num_layers=layers, num_heads=4,
                               num_kv_heads=4, head_dim=16, expert_ffn=32, num_experts=8, top_k=2, shared_ffn=48,
                               vocab_size=100)


def small_llama4_moe(layers=2):
    """Llama 4's MoE block: top-1 sigmoid router, the weight applied to the expert's input, a shared expert."""
    from opbsim.workloads.models import RouterScoring

    return _routed(dataclasses.replace(small_mixtral(layers), num_experts=8, top_k=1, num_shared_experts=1,
                                       shared_ffn=48), scoring=RouterScoring.SIGMOID, weight_on_input=True)


def small_gpt_oss_ffn(layers=2):
    """gpt-oss's experts: the clamped SwiGLU (limit 7, alpha 1.702) with biases on both projections."""
    from opbsim.workloads.models import FFNAct, RouterScoring

    return _routed(dataclasses.replace(small_mixtral(layers), num_experts=8, top_k=4, ffn_act=FFNAct.SWIGLU_OAI,
                                       expert_bias=True), scoring=RouterScoring.SOFTMAX_TOPK, bias=True)


@pytest.mark.parametrize("make", [small_qwen_moe, small_llama4_moe, small_gpt_oss_ffn],
                         ids=["qwen-gated-shared", "llama4-weight-on-input", "gpt-oss-clamped-swiglu"])
@pytest.mark.parametrize("policy,device", [("duplex", "duplex"), ("xpu-only", "h100")])
def test_2026_moe_blocks_compile_to_the_numerics_definition_bit_for_bit(make, policy, device):
    model = make()
    ref, memory, compiled = run_stage(model, MIXED, device=device, policy=policy)
    for name in ("L0.ffn_out", "L1.ffn_out", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name
    assert np.abs(ref["L1.ffn_out"]).max() > 0


def test_the_clamped_swiglu_is_within_bf16_rounding_of_its_float64_definition():
    """The steps round to bf16 as transformers' GptOssExperts does; against float64 of the same
    formula the error is a few bf16 roundings (2^-9 each) relative to the output's scale."""
    from opbsim.emulator.layer_values import NumericsBuilder
    from opbsim.isa import numerics as N
    from opbsim.layers.ffn import _swiglu_oai
    from opbsim.workloads.stage import Stage

    model = small_gpt_oss_ffn()
    rng = np.random.default_rng(9)
    gate = N.store(rng.standard_normal((16, 32)).astype(np.float32) * 4, DType.BF16)
    up = N.store(rng.standard_normal((16, 32)).astype(np.float32) * 4, DType.BF16)
    nb = NumericsBuilder(model, Stage.decode(1, 2), lambda name: None)
    nb.hold("gate", DType.BF16, gate)
    nb.hold("up", DType.BF16, up)
    out = nb.buf("out", DType.BF16, (16, 32))
    _swiglu_oai(nb, out, nb.buf("gate", DType.BF16, (16, 32)), nb.buf("up", DType.BF16, (16, 32)))
    g = np.minimum(N.widen(gate, DType.BF16).astype(np.float64), 7.0)
    u = np.clip(N.widen(up, DType.BF16).astype(np.float64), -7.0, 7.0)
    want = (u + 1) * g / (1 + np.exp(-1.702 * g))
    got = N.widen(nb.raw("out"), DType.BF16).reshape(16, 32)
    assert np.abs(want).max() > 1
    assert np.abs(got - want).max() <= 2.0**-6 * np.abs(want).max()
