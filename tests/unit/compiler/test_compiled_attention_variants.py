"""The 2026 attention variants compile to the numerics definition bit for bit: sliding windows (per
layer, gpt-oss; every layer, Mistral), chunked attention with NoPE layers and the query temperature
(Llama 4), attention sinks and the output-projection bias (gpt-oss), the unweighted q/k norm."""

import dataclasses

import numpy as np
import pytest

from opbsim.errors import InputError
from opbsim.workloads import get_preset
from opbsim.workloads.models import QueryTemperature
from opbsim.workloads.stage import PrefillChunk, Stage

from .harness import read, run_stage
from .test_compiled_values import MIXED, bits_equal, small_llama

# a second prefill chunk past the window / chunk boundary, decode rows on both sides of it
LONG = Stage(prefill=(PrefillChunk(6, past_tokens=0), PrefillChunk(5, past_tokens=7)), decode_ctx_tokens=(11, 3, 9))


def small_gpt_oss(layers=2):
    """gpt-oss's attention: window 4 on even layers, full on odd ones, sinks, q/k/v/o biases."""
    return dataclasses.replace(get_preset("gpt-oss-20b"), hidden_size=64, num_layers=layers, num_heads=4,
                               num_kv_heads=2, head_dim=16, expert_ffn=32, num_experts=8, vocab_size=100,
                               sliding_window=4, weight_quant=None)


def small_mistral_window(layers=2):
    """Every layer a sliding window of 3 (Mistral-7B-v0.1 style)."""
    return dataclasses.replace(small_llama(layers), sliding_window=3)


def small_llama4(layers=4):
    """Llama 4's attention: chunks of 4 on RoPE layers (with the unweighted q/k norm after RoPE),
    layer 3 without RoPE attending to all keys with the query temperature (floor_scale 4 so the
    positions of the test reach it)."""
    return dataclasses.replace(get_preset("llama4-scout"), hidden_size=64, num_layers=layers, num_heads=4,
                               num_kv_heads=2, head_dim=16, expert_ffn=32, shared_ffn=32, num_experts=4,
                               vocab_size=100, attention_chunk_size=4,
                               query_temperature=QueryTemperature(floor_scale_tokens=4, attn_scale=0.1))


MAKERS = [small_gpt_oss, small_mistral_window, small_llama4]
IDS = ["gpt-oss-window-sinks", "mistral-window", "llama4-chunked-nope"]


@pytest.mark.parametrize("stage", [MIXED, LONG], ids=["mixed", "long"])
@pytest.mark.parametrize("make", MAKERS, ids=IDS)
@pytest.mark.parametrize("policy,device", [("duplex", "duplex"), ("xpu-only", "h100")])
def test_windowed_chunked_and_sink_attention_compile_to_the_numerics_definition_bit_for_bit(make, stage, policy,
                                                                                               device):
    model = make()
    ref, memory, compiled = run_stage(model, stage, device=device, policy=policy)
    last = model.num_layers - 1
    for name in ("L0.attn", f"L{last}.attn", "L0.ffn_out", f"L{last}.ffn_out", "logits"):
        got = read(memory, compiled, name)
        assert bits_equal(got.reshape(ref[name].shape), ref[name]), name
    assert np.abs(ref["L0.attn"]).max() > 0


def test_a_windowed_decode_reads_only_its_window_of_keys():
    from opbsim.compiler import compile_graph
    from opbsim.hardware import get_device
    from opbsim.workloads.graph import build_model

    model = small_mistral_window(1)
    compiled = compile_graph(build_model(model, Stage.decode(2, 50)), get_device("h100"), "xpu-only")
    softmaxes = [i for i in compiled.program.instructions if i.mnemonic in ("softmax", "softmax_masked")]
    assert softmaxes
    for inst in softmaxes:
        assert compiled.program.operand_descriptor(inst, "src").shape[-1] == 3  # the window, not the 50 tokens


def test_the_query_temperature_matches_llama4_formula_in_float64_and_reaches_past_one():
    from opbsim.layers.attention import query_temperature

    pos = np.arange(0, 40000, 7)
    got = query_temperature(pos, 8192, 0.1)
    want = np.log1p(np.floor((pos + 1.0) / 8192)) * 0.1 + 1.0
    assert np.abs(got - want).max() <= 2.0**-22
    assert got[0] == 1.0 and got[-1] > 1.1


def test_an_output_projection_bias_under_tensor_parallelism_is_refused_in_one_line():
    from opbsim.compiler import compile_graph
    from opbsim.hardware import get_device
    from opbsim.workloads.graph import build_model

    with pytest.raises(InputError, match="row-parallel projection .* tensor parallelism"):
        compile_graph(build_model(small_gpt_oss(1), Stage.decode(2, 8), tp=2), get_device("h100"), "xpu-only")


@pytest.mark.parametrize("make,layer", [(small_gpt_oss, 0), (small_gpt_oss, 1), (small_mistral_window, 1),
                                        (small_llama4, 2)],
                         ids=["gpt-oss-window-sinks", "gpt-oss-full-sinks", "mistral-window", "llama4-chunked"])
def test_windowed_chunked_and_sink_attention_is_within_bf16_rounding_of_float64(make, layer):
    """From the layer's own q, K and V (exact bf16 values), float64 attention with the masks and
    sinks written as transformers states them. Bound: the scores are fp32, the probabilities and
    the output bf16 (2^-9 each), so the output is within a few 2^-9 of the largest value; measured
    errors are printed by the test (-s) and bounded here by 2^-7."""
    from opbsim.emulator.golden_attention import attention
    from opbsim.layers.stage_rows import requests

    model = make()
    ref, _memory, _compiled = run_stage(model, LONG, device="h100", policy="xpu-only")
    H, KV, d, L = model.num_heads, model.num_kv_heads, model.head_dim, f"L{layer}"
    reqs = requests(LONG)
    qkv = ref[f"{L}.qkv"].astype(np.float64).reshape(LONG.tokens, (H + 2 * KV) * d)
    q = qkv[:, :H * d].reshape(-1, H, d)
    kc = ref[f"{L}.k_cache"].astype(np.float64).reshape(len(reqs), -1, KV, d)
    vc = ref[f"{L}.v_cache"].astype(np.float64).reshape(len(reqs), -1, KV, d)
    kind = model.layer_attention(layer).value
    window = model.sliding_window if kind == "sliding" else 0
    chunk = model.attention_chunk_size if kind == "chunked" else 0
    assert window or chunk or model.attention_sinks  # the variant under test is present
    sinks = ref[f"{L}.sinks"].astype(np.float64) if model.attention_sinks else None
    want = attention(q, [kc[i, :r.context] for i, r in enumerate(reqs)], [vc[i, :r.context] for i, r in
                                                                           enumerate(reqs)],
                     reqs, window=window, chunk=chunk, sinks=sinks)
    got = ref[f"{L}.attn"].astype(np.float64).reshape(want.shape)
    err = np.abs(got - want).max() / np.abs(want).max()
    print(f"{make.__name__} {L}: max |numerics - float64| / max |float64| = {err:.2e}")
    assert np.abs(want).max() > 0.01
    assert err <= 2.0**-7
    unmasked = attention(q, [kc[i, :r.context] for i, r in enumerate(reqs)],
                         [vc[i, :r.context] for i, r in enumerate(reqs)], reqs)
    assert np.abs(unmasked - want).max() > 2.0**-5 * np.abs(want).max()  # the masks and sinks matter here


@pytest.mark.parametrize("past,new,span,chunked", [(4096, 2048, 128, False), (0, 300, 128, False),
                                                    (9000, 3000, 8192, True), (0, 20, 8, True)])
def test_a_masked_prefill_parts_unmasked_share_counts_the_pairs_the_graph_counts(past, new, span, chunked):
    from opbsim.isa.program import AttentionPart
    from opbsim.layers.attention import first_key
    from opbsim.layers.stage_rows import Request
    from opbsim.workloads.attention import attended_pairs, chunked_pairs
    from opbsim.workloads.models import AttentionKind

    k0 = first_key(AttentionKind.CHUNKED if chunked else AttentionKind.SLIDING, span, Request(0, new, past))
    part = AttentionPart("prefill", new, past - k0, span=span, chunked=chunked)
    pairs = chunked_pairs(past, new, span) if chunked else attended_pairs(past, new, span)
    assert part.unmasked_share * new * (past + new - k0) == pytest.approx(pairs, rel=1e-12)
    assert part.unmasked_share <= AttentionPart("prefill", new, past - k0).unmasked_share
