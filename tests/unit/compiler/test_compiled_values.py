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
