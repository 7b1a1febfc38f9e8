"""Layers of the models that scale RoPE compile with the scaling applied: a DeepSeek-V3-shaped MLA layer
(YaRN x40 with mscale = mscale_all_dim = 1, so the softmax scale grows by (0.1 ln 40 + 1)^2), a
gpt-oss-shaped layer (YaRN x32, truncate false, cos and sin times 0.1 ln 32 + 1) and a Llama 4-shaped
layer (llama3 x8) run bit for bit as the numerics definition, and within bf16 rounding of float64
written from transformers' formulas (emulator/golden_rope.py), which the unscaled rotation misses."""

import dataclasses

import numpy as np
import pytest

from opbsim.emulator import golden
from opbsim.isa.elementary import rope_inv_freq
from opbsim.isa.types import DType
from opbsim.layers.rope_table import rope_table
from opbsim.layers.stage_rows import requests
from opbsim.workloads import get_preset
from opbsim.workloads.models import MLA
from opbsim.workloads.stage import PrefillChunk, Stage

from .harness import read, run_stage
from .test_compiled_attention_variants import small_gpt_oss, small_llama4
from .test_compiled_values import bits_equal

# positions past the pretraining context's low frequencies: a prefill chunk at 0, decode rows near 3000 and 9000
FAR = Stage(prefill=(PrefillChunk(4, past_tokens=0),), decode_ctx_tokens=(3000, 9000))


def small_deepseek_v3(layers=2):
    """DeepSeek-V3-shaped: MLA with a query LoRA, YaRN x40 (mscale 1.0, mscale_all_dim 1.0), a sigmoid
    router with group-limited top-k, bf16 weights."""
    m = get_preset("deepseek-v3")
    return dataclasses.replace(m, hidden_size=64, num_layers=layers, num_heads=4, num_kv_heads=4, head_dim=24,
                               vocab_size=100, dense_ffn=96, expert_ffn=32, num_experts=8, top_k=2, shared_ffn=32,
                               first_dense_layers=1, weight_quant=None, weight_dtype=DType.BF16,
                               router=dataclasses.replace(m.router, n_group=2, topk_group=1),
                               mla=MLA(q_lora_rank=24, kv_lora_rank=32, qk_nope_head_dim=16, qk_rope_head_dim=8,
                                       v_head_dim=16))


MAKERS = {"deepseek-v3-mla-yarn": small_deepseek_v3, "gpt-oss-yarn": small_gpt_oss, "llama4-llama3": small_llama4}


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
@pytest.mark.parametrize("policy,device", [("duplex", "duplex"), ("xpu-only", "h100")])
def test_a_layer_with_scaled_rope_compiles_to_the_numerics_definition_bit_for_bit(make, policy, device):
    model = make()
    ref, memory, compiled = run_stage(model, FAR, device=device, policy=policy)
    names = ["L0.attn", "L1.attn", "L1.ffn_out", "logits"] + (["L1.kv_cache", "L1.q_latent"] if model.mla else [])
    for name in names:
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(-1)[:ref[name].size], ref[name].reshape(-1)), name


@pytest.mark.parametrize("make", MAKERS.values(), ids=MAKERS.keys())
def test_the_program_rotates_by_the_scaled_table_and_its_cos_sin_factor(make):
    model = make()
    _ref, memory, compiled = run_stage(model, FAR, device="h100", policy="xpu-only")
    d = model.mla.qk_rope_head_dim if model.mla else model.head_dim
    table, mscale = rope_table(model, d)
    ropes = [i for i in compiled.program.instructions if i.mnemonic == "rope"]
    assert ropes
    for inst in ropes:
        freq = compiled.program.operand_descriptor(inst, "freq")
        assert freq.dtype is DType.FP32 and freq.shape == (d // 2,)
        assert np.array_equal(memory.load(freq), table)
        assert inst.operands[-1] == mscale
    unscaled = rope_inv_freq(float(np.float32(model.rope_theta)), d)
    assert not np.array_equal(table, unscaled)
    assert mscale == {"deepseek-v3-mla-yarn": 1.0, "gpt-oss-yarn": float(np.float32(0.1 * np.log(32) + 1)),
                      "llama4-llama3": 1.0}[next(k for k, v in MAKERS.items() if v is make)]


def _rotated_heads(model, ref, layer, scaling):
    """(the layer's query and key heads after RoPE, float64 of the same from x_norm and the weights)."""
    H, KV, d, L = model.num_heads, model.num_kv_heads, model.head_dim, f"L{layer}"
    T = FAR.tokens
    qkv = ref[f"{L}.x_norm"].astype(np.float64) @ ref[f"{L}.w_qkv"].astype(np.float64)
    if f"{L}.b_qkv" in ref:
        qkv = qkv + ref[f"{L}.b_qkv"].astype(np.float64)
    heads = qkv[:, :(H + KV) * d].reshape(T, H + KV, d).transpose(1, 0, 2)
    pos = np.concatenate([np.arange(r.past, r.context) for r in requests(FAR)])
    want = golden.rope(heads, pos, float(model.rope_theta), scaling)
    if model.qk_norm.value == "per_head_unweighted":  # Llama4TextL2Norm after RoPE
        want = want / np.sqrt(np.mean(want * want, axis=-1, keepdims=True) + model.norm_eps)
    got = ref[f"{L}.qkv"].astype(np.float64).reshape(T, -1)[:, :(H + KV) * d].reshape(T, H + KV, d)
    return got.transpose(1, 0, 2), want


@pytest.mark.parametrize("make", [small_gpt_oss, small_llama4], ids=["gpt-oss-yarn", "llama4-llama3"])
def test_scaled_rope_is_within_bf16_rounding_of_transformers_formulas_in_float64_and_unscaled_is_not(make):
    """Bound: qkv is rounded to bf16 after the projection (and the bias) and again after RoPE (and
    Llama 4's norm), 2^-9 relative each; measured errors (-s) stay under 2^-7 of the largest value."""
    model = make()
    ref, _memory, _compiled = run_stage(model, FAR, device="h100", policy="xpu-only")
    got, want = _rotated_heads(model, ref, 0, model.rope_scaling)
    err = np.abs(got - want).max() / np.abs(want).max()
    print(f"{make.__name__}: max |numerics - float64| / max |float64| = {err:.2e}")
    assert err <= 2.0**-7
    _, unscaled = _rotated_heads(model, ref, 0, None)
    assert np.abs(got - unscaled).max() > 2.0**-4 * np.abs(want).max()  # the scaling matters at these positions


def test_deepseek_v3_mla_is_within_bf16_rounding_of_float64_with_its_softmax_scale_factor_and_not_without():
    """As test_mla_numerics_definition_is_within_bf16_rounding_of_float64_attention, at positions up to
    9000; float64 without the scaling (unscaled frequencies and softmax scale) is off by more than the bound."""
    from opbsim.emulator.golden_mla import mla_attention

    model = small_deepseek_v3()
    ref, memory, compiled = run_stage(model, FAR, device="h100", policy="xpu-only")
    a, H, L = model.mla, model.num_heads, "L1"
    names = ("w_q_a", "w_q_a_norm", "w_q_b", "w_kv_a", "w_kv_a_norm", "w_kv_b")
    w = {n: read(memory, compiled, f"{L}.{n}").astype(np.float64).reshape(compiled.buffers[f"{L}.{n}"].shape)
         for n in names}
    reqs = requests(FAR)
    cache = ref[f"{L}.kv_cache"].reshape(len(reqs), -1, a.cache_dim).astype(np.float64)
    past = [cache[i, :r.past] for i, r in enumerate(reqs)]
    x = ref[f"{L}.x_norm"].astype(np.float64)
    got = ref[f"{L}.attn"].astype(np.float64)
    want = mla_attention(x, w, a, H, reqs, past, model.rope_theta, model.norm_eps, model.rope_scaling)
    err = np.abs(got.reshape(want.shape) - want).max() / np.abs(want).max()
    print(f"deepseek-v3 MLA: max |numerics - float64| / max |float64| = {err:.2e}")
    assert np.abs(want).max() > 0.01 and err <= 2.0**-6
    unscaled = mla_attention(x, w, a, H, reqs, past, model.rope_theta, model.norm_eps, None)
    assert np.abs(got.reshape(want.shape) - unscaled).max() > 2.0**-4 * np.abs(want).max()
