"""Multi-head latent attention (DeepSeek-V2): latent cache, absorbed decode, decompressed prefill."""

import pytest

from opbsim.workloads import OpKind, PrefillChunk, Stage, build_layer, build_model, get_preset

LITE = get_preset("deepseek-v2-lite")  # 16 heads, kv_lora_rank 512, rope 64, nope 128, v 128
C, R, NOPE, V, HEADS = 512, 64, 128, 128, 16


def test_decode_attends_over_the_latent_cache_shared_by_all_heads():
    ctx = 4096
    op = build_layer(LITE, Stage.decode(8, ctx), 1).op("attn_decode")
    assert op.shapes["L1.kv_cache"] == (8 * ctx, C + R)  # one latent and rope key per token
    assert op.estimates.flops == 8 * ctx * HEADS * (2 * (C + R) + 2 * C + 5)  # scores over 576, values over 512
    # Op/B -> heads (4C + 2R + 5) / (2 (C + R)): every head reuses each cached byte
    assert op.estimates.op_per_B == pytest.approx(HEADS * (4 * C + 2 * R + 5) / (2 * (C + R)), rel=0.01)


def test_decode_absorbs_the_kv_up_projection_into_queries_and_outputs():
    layer = build_layer(LITE, Stage.decode(4, 100), 1)
    q_absorb, v_absorb = layer.op("q_absorb"), layer.op("v_absorb")
    assert q_absorb.kind is OpKind.BATCHED_GEMM
    assert q_absorb.shapes["L1.w_kv_b"] == (HEADS, NOPE, C)
    assert v_absorb.shapes["L1.w_kv_b"] == (HEADS, C, V)
    assert q_absorb.estimates.flops == 2 * 4 * HEADS * NOPE * C


def test_prefill_decompresses_the_chunks_context_then_attends_per_head():
    chunk = PrefillChunk(256, past_tokens=768)
    layer = build_layer(LITE, Stage(prefill=(chunk,)), 1)
    up = layer.op("kv_b_proj.0")
    assert up.estimates.flops == 2 * 1024 * C * HEADS * (NOPE + V)  # the whole context, all heads
    attn = layer.op("attn_prefill.0")
    pairs = 256 * 768 + 256 * 257 // 2
    assert attn.estimates.flops == pairs * HEADS * (2 * (NOPE + R) + 2 * V + 5)


def test_a_decode_step_reads_every_mla_weight_once():
    T = 64  # 64 tokens x top-6 over 64 experts: every expert gets 6
    graph = build_model(LITE, Stage.decode(T, 128))
    weight_B = sum(op.weight_B for op in graph.ops)
    assert weight_B == (LITE.params_total - LITE.vocab_size * LITE.hidden_size + T * LITE.hidden_size) * 2


def test_query_compression_adds_its_two_projections_and_norm():
    layer = build_layer(get_preset("deepseek-v2"), Stage.decode(2, 16), 1, tp=8)
    names = [op.name.split(".", 1)[1] for op in layer.ops[:5]]
    assert names == ["attn_norm", "q_a_proj", "q_a_norm", "q_b_proj", "kv_a_proj"]
    assert layer.op("q_b_proj").shapes["L1.w_q_b"] == (1536, 128 // 8 * (NOPE + R))  # 16 heads per device
