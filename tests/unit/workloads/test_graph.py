"""Layer graphs: the ops of a stage, their shapes and their estimates (flops, bytes, Op/B)."""

from dataclasses import replace

import pytest

from opbsim.errors import InputError
from opbsim.isa.types import DType
from opbsim.workloads import (
    PRESETS,
    ModelConfig,
    OpClass,
    OpKind,
    PrefillChunk,
    Role,
    Stage,
    UniformRouting,
    build_layer,
    build_model,
    get_preset,
)
from opbsim.workloads.attention import attended_pairs

MIXTRAL = get_preset("mixtral-8x7b")
SOFTMAX = 5  # max, subtract, exp, sum, scale per score


@pytest.mark.parametrize("name, group", [("mixtral-8x7b", 4), ("grok-1", 6), ("llama-3-70b", 8), ("opt-66b", 1)])
def test_decode_attention_op_per_byte_equals_the_gqa_group_size(name, group):
    m = get_preset(name)
    ctx, d = 4096, m.head_dim
    op = build_layer(m, Stage.decode(batch=16, context_tokens=ctx), 0).op("attn_decode")
    heads, kv = m.num_heads, m.num_kv_heads
    assert op.estimates.flops == 16 * heads * ctx * (2 * d + 2 * d + SOFTMAX)  # q k^T, p v, softmax per score
    assert op.estimates.read_B == 16 * (heads * d + 2 * ctx * kv * d) * 2  # q, K and V of every request, bf16
    assert op.estimates.write_B == 16 * heads * d * 2
    # Op/B = heads (4d + 5) ctx / (4 kv d ctx + 4 heads d) = group (1 + 5 / 4d) / (1 + group / ctx)
    assert op.estimates.op_per_B == pytest.approx(group * (1 + 5 / (4 * d)) / (1 + group / ctx))
    assert op.estimates.op_per_B == pytest.approx(group, rel=0.012)


def test_decode_attention_op_per_byte_does_not_depend_on_the_batch():
    one = build_layer(MIXTRAL, Stage.decode(1, 2048), 0).op("attn_decode").estimates.op_per_B
    many = build_layer(MIXTRAL, Stage.decode(128, 2048), 0).op("attn_decode").estimates.op_per_B
    assert one == pytest.approx(many)


@pytest.mark.parametrize("tokens", [1, 4, 16, 64])
def test_an_experts_op_per_byte_is_close_to_its_token_count(tokens):
    h, f = 4096, 14336
    counts = [tokens, tokens] + [0] * 6  # tokens tokens routed to experts 0 and 1 (top-2)
    op = build_layer(MIXTRAL, Stage.decode(tokens, 512), 0, expert_tokens=counts).op("expert.0")
    assert op.estimates.flops == 2 * tokens * h * f * 3 + 4 * tokens * f  # 3 matrices, silu (3) and gating (1)
    assert op.estimates.bytes_B == (3 * h * f + 2 * tokens * h) * 2  # weights, tokens in and out, bf16
    assert op.estimates.op_per_B == pytest.approx(tokens, rel=0.01)  # n / (1 + 2n / 3f) + activation flops


def test_experts_without_tokens_get_no_op():
    layer = build_layer(MIXTRAL, Stage.decode(1, 512), 0)  # one token: top-2 of 8 experts
    experts = [op for op in layer.ops if op.name.startswith("L0.expert.")]
    assert len(experts) == 2
    assert sum(op.params["tokens"] for op in experts) == 1 * 2


def test_balanced_routing_gives_each_expert_batch_times_top_k_over_experts_tokens():
    layer = build_layer(get_preset("glam-143b"), Stage.decode(64, 512), 1)  # MoE layer
    tokens = [op.params["tokens"] for op in layer.ops if op.kind is OpKind.FFN]
    assert tokens == [64 * 2 // 64] * 64  # mean n = B k / E = 2


def test_projection_gemms_have_exact_shapes_and_flops():
    T = 8
    layer = build_layer(MIXTRAL, Stage.decode(T, 100), 0)
    qkv = layer.op("qkv_proj")
    assert qkv.shapes["L0.w_qkv"] == (4096, (32 + 2 * 8) * 128)
    assert qkv.estimates.flops == 2 * T * 4096 * (32 + 2 * 8) * 128
    assert qkv.estimates.read_B == (T * 4096 + 4096 * 48 * 128) * 2
    o = layer.op("o_proj")
    assert o.shapes["L0.w_o"] == (32 * 128, 4096)
    assert layer.op("router").outputs[0].dtype is DType.FP32
    assert layer.op("topk").outputs[1].dtype is DType.I32


def test_weights_read_by_a_decode_step_equal_the_model_less_the_unread_embedding_rows():
    T = 64  # enough tokens that every expert gets some under balanced routing
    graph = build_model(MIXTRAL, Stage.decode(T, 256))
    weight_B = sum(op.weight_B for op in graph.ops)
    assert weight_B == (MIXTRAL.params_total - 32000 * 4096 + T * 4096) * 2  # the embedding gathers T rows


def test_a_decode_step_costs_about_two_flops_per_active_parameter_and_token():
    m, T = get_preset("deepseek-moe-16b"), 6
    graph = build_model(m, Stage.decode(T, 1))  # context 1: attention is negligible
    matmul_params = m.params_active - m.vocab_size * m.hidden_size  # the embedding is gathered, not multiplied
    assert graph.estimates.flops == pytest.approx(2 * T * matmul_params, rel=0.01)


def test_prefill_attention_is_causal_over_the_chunk_and_its_past():
    m = MIXTRAL
    chunk = PrefillChunk(new_tokens=512, past_tokens=1024, final=False)
    layer = build_layer(m, Stage(prefill=(chunk,)), 0)
    op = layer.op("attn_prefill.0")
    pairs = 512 * 1024 + 512 * 513 // 2  # every query sees the past, and the chunk causally
    assert op.estimates.flops == pairs * 32 * (4 * 128 + SOFTMAX)
    assert op.shapes["L0.kv_cache"] == (2, 1536, 8, 128)
    assert op.params["past_tokens"] == 1024


def test_prefill_attention_op_per_byte_grows_with_the_prompt():
    short = build_layer(MIXTRAL, Stage(prefill=(PrefillChunk(256),)), 0).op("attn_prefill.0").estimates.op_per_B
    long = build_layer(MIXTRAL, Stage(prefill=(PrefillChunk(4096),)), 0).op("attn_prefill.0").estimates.op_per_B
    assert long / short == pytest.approx(4096 / 256, rel=0.05)


def test_a_mixed_stage_has_one_attention_op_per_prefill_chunk_and_one_for_all_decodes():
    stage = Stage(prefill=(PrefillChunk(100), PrefillChunk(50, past_tokens=200)), decode_ctx_tokens=(10, 20, 30))
    layer = build_layer(MIXTRAL, stage, 0)
    names = [op.name for op in layer.ops if op.kind is OpKind.ATTENTION]
    assert names == ["L0.attn_prefill.0", "L0.attn_prefill.1", "L0.attn_decode"]
    assert layer.op("qkv_proj").inputs[0].shape == (100 + 50 + 3, 4096)
    assert layer.op("attn_decode").params["ctx_tokens"] == (10, 20, 30)
    assert stage.logit_rows == 2 + 3  # each final chunk samples one token, each decode one


@pytest.mark.parametrize("past, new, window, pairs", [
    (0, 4, 0, 1 + 2 + 3 + 4),
    (10, 2, 0, 11 + 12),
    (0, 6, 4, 1 + 2 + 3 + 4 + 4 + 4),
    (10, 3, 4, 4 * 3),
    (2, 4, 4, 3 + 4 + 4 + 4),
])
def test_attended_pairs_count_causal_keys_within_the_window(past, new, window, pairs):
    assert attended_pairs(past, new, window) == pairs


def test_a_sliding_window_caps_what_decode_attention_reads():
    m = ModelConfig(name="w", hidden_size=256, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=64,
                    vocab_size=100, dense_ffn=512, sliding_window=100, rope_theta=10000.0, norm_eps=1e-5)
    op = build_layer(m, Stage.decode(2, 1000), 0).op("attn_decode")
    assert op.shapes["L0.kv_cache"] == (2, 2 * 100, 2, 64)


def test_tensor_parallelism_splits_heads_and_widths_and_adds_two_all_reduces_per_layer():
    T, tp = 16, 4
    layer = build_layer(MIXTRAL, Stage.decode(T, 128), 0, tp=tp)
    assert layer.op("qkv_proj").shapes["L0.w_qkv"] == (4096, (32 // tp + 2 * 8 // tp) * 128)
    assert layer.op("expert.0").params["ffn"] == 14336 // tp
    reduces = [op for op in layer.ops if op.kind is OpKind.ALL_REDUCE]
    assert [op.name for op in reduces] == ["L0.attn_all_reduce", "L0.ffn_all_reduce"]
    assert reduces[0].estimates.link_B == 2 * (tp - 1) * T * 4096 * 2 // tp  # ring: 2 (p-1)/p of T x h bf16
    assert reduces[0].op_class is OpClass.COMM


def test_kv_heads_are_replicated_when_there_are_more_devices_than_kv_heads():
    layer = build_layer(get_preset("llama-3-70b"), Stage.decode(1, 128), 0, tp=16)
    assert layer.op("qkv_proj").shapes["L0.w_qkv"] == (8192, (64 // 16 + 2 * 1) * 128)


def test_lm_head_logits_are_gathered_across_devices():
    graph = build_model(get_preset("llama-2-7b"), Stage.decode(4, 64), tp=2)
    assert [op.name for op in graph.epilogue] == ["final_norm", "lm_head", "logits_all_gather"]
    assert graph.epilogue[1].shapes["lm_head"] == (4096, 32000 // 2)
    assert graph.epilogue[2].outputs[0].shape == (4, 32000)


@pytest.mark.parametrize("tp, message", [
    (3, "tp (3) must divide num_heads (32)"),
    (0, "tp must be a positive integer, got 0"),
])
def test_a_tensor_parallel_degree_that_does_not_fit_the_heads_is_rejected(tp, message):
    with pytest.raises(InputError) as err:
        build_layer(MIXTRAL, Stage.decode(1, 8), 0, tp=tp)
    assert str(err.value) == message


def test_dependencies_follow_the_tensors():
    graph = build_model(MIXTRAL, Stage.decode(64, 256))
    deps = graph.dependencies()
    assert deps["L0.rope"] == ("L0.qkv_proj",)
    assert deps["L0.attn_decode"] == ("L0.rope", "L0.kv_store")  # q after RoPE, the cache after the append
    assert deps["L0.expert.3"] == ("L0.dispatch",)
    assert set(deps["L0.combine"]) == {f"L0.expert.{e}" for e in range(8)} | {"L0.topk"}
    assert set(deps["L1.attn_norm"]) == {"L0.ffn_norm", "L0.combine"}  # the residual stream and the MoE output
    assert deps["embed"] == ()


def test_every_tensor_an_op_reads_is_a_weight_cache_or_an_earlier_output():
    graph = build_model(get_preset("qwen1.5-moe-a2.7b"), Stage(prefill=(PrefillChunk(32),), decode_ctx_tokens=(9,)))
    written = {"token_ids"}
    for op in graph.ops:
        for t in op.inputs:
            assert t.role is not Role.ACTIVATION or t.name in written, (op.name, t.name)
        written.update(t.name for t in op.outputs)


def test_qwen_layers_run_the_gated_shared_expert_beside_the_routed_ones():
    layer = build_layer(get_preset("qwen1.5-moe-a2.7b"), Stage.decode(4, 64), 0)
    shared = layer.op("shared_experts")
    assert shared.params["ffn"] == 5632 and shared.params["output_gate"]
    assert "L0.shared.w_output_gate" in shared.shapes


def test_deepseek_layer_0_has_a_dense_ffn_and_layer_1_shared_experts_of_twice_1408():
    m = get_preset("deepseek-moe-16b")
    assert not build_layer(m, Stage.decode(2, 8), 0).moe
    assert build_layer(m, Stage.decode(2, 8), 0).op("ffn").params["ffn"] == 10944
    assert build_layer(m, Stage.decode(2, 8), 1).op("shared_experts").params["ffn"] == 2 * 1408


def test_learned_positions_replace_rope():
    graph = build_model(get_preset("opt-66b"), Stage.decode(2, 8))
    assert not any(op.kind is OpKind.ROPE for op in graph.ops)
    assert graph.prologue[0].estimates.flops == 2 * 9216  # one add per element of the position embedding


def test_a_model_without_rope_theta_gets_no_rope_op():
    glam = build_model(get_preset("glam-143b"), Stage.decode(2, 8))  # relative position bias, not RoPE
    assert not any(op.kind is OpKind.ROPE for op in glam.ops)
    assert glam.prologue[0].estimates.flops == 0  # and no learned positions either
    assert sum(op.kind is OpKind.ROPE for op in build_model(MIXTRAL, Stage.decode(2, 8)).ops) == 32


def test_op_classes_partition_the_layer():
    layer = build_layer(MIXTRAL, Stage.decode(32, 1024), 0)
    by_class = layer.by_class()
    assert sum(e.flops for e in by_class.values()) == layer.estimates.flops
    assert set(by_class) == {OpClass.FC, OpClass.ATTENTION, OpClass.MOE, OpClass.OTHER}


def test_routing_decides_the_expert_token_counts_of_every_moe_layer():
    graph = build_model(MIXTRAL, Stage.decode(16, 64), routing=UniformRouting(8, 2, seed=1))
    for layer in graph.layers:
        assert sum(op.params["tokens"] for op in layer.ops if op.kind is OpKind.FFN) == 16 * 2


def test_a_routing_for_another_expert_count_is_rejected():
    with pytest.raises(InputError, match=r"^routing has 64 experts, top-2; the model 8, top-2$"):
        build_model(MIXTRAL, Stage.decode(1, 8), routing=UniformRouting(64, 2, seed=0))


@pytest.mark.parametrize("counts, message", [
    ([1] * 7, "expert_tokens has 7 entries for 8 experts"),
    ([3, 0, 0, 0, 0, 0, 0, 1], "expert_tokens must each be in 0..2 (the stage's tokens)"),
    ([1, 1, 1, 0, 0, 0, 0, 0], "expert_tokens must sum to tokens x top_k (2 x 2 = 4), got 3"),
])
def test_explicit_expert_token_counts_must_be_a_possible_routing(counts, message):
    with pytest.raises(InputError) as err:
        build_layer(MIXTRAL, Stage.decode(2, 8), 0, expert_tokens=counts)
    assert str(err.value) == message


def test_a_stage_needs_work_and_positive_lengths():
    with pytest.raises(InputError, match=r"^a stage needs at least one prefill chunk or decode token$"):
        Stage()
    with pytest.raises(InputError, match=r"^decode context must be a positive integer, got 0$"):
        Stage(decode_ctx_tokens=(0,))
    with pytest.raises(InputError, match=r"^new_tokens must be a positive integer, got 0$"):
        PrefillChunk(0)


def test_a_non_final_chunk_alone_reaches_no_lm_head():
    graph = build_model(MIXTRAL, Stage(prefill=(PrefillChunk(64, final=False),)))
    assert graph.epilogue == ()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_whole_model_estimates_from_one_layer_per_kind_equal_those_of_every_layer(name):
    from opbsim.workloads.graph import model_estimates

    model = PRESETS[name]
    stage = Stage(prefill=(PrefillChunk(17),), decode_ctx_tokens=(5, 9, 300))
    assert model_estimates(model, stage, tp=2) == build_model(model, stage, tp=2).by_class()


@pytest.mark.parametrize("first, every", [(0, 1), (1, 1), (3, 2), (0, 4), (7, 3)])
def test_the_moe_layer_count_is_the_length_of_the_moe_layer_list(first, every):
    model = replace(PRESETS["mixtral-8x7b"], first_dense_layers=first, moe_every=every,
                    dense_ffn=0 if (first, every) == (0, 1) else 128)
    assert model.num_moe_layers == len(model.moe_layers)
