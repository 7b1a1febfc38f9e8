"""The 2026 MoE fields of ModelConfig: their checks, their Hugging Face files and the shapes and costs
of the ops they add."""

import dataclasses
from pathlib import Path

import pytest

from opbsim.errors import InputError
from opbsim.workloads import PRESETS, Stage, build_layer, load_hf_config, parse_hf_config
from opbsim.workloads import primitives as P
from opbsim.workloads.attention import chunked_pairs
from opbsim.workloads.models import AttentionKind, ConfigError, Router, RouterScoring, WeightQuant
from opbsim.workloads.moe import topk_flops

FIXTURES = Path(__file__).parents[2] / "fixtures"


@pytest.mark.parametrize("file,preset", [
    ("deepseek-v3", "deepseek-v3"), ("gpt-oss-120b", "gpt-oss-120b"), ("gpt-oss-20b", "gpt-oss-20b"),
    ("qwen3-30b-a3b", "qwen3-30b-a3b"), ("llama4-scout-17b-16e", "llama4-scout")])
def test_each_2026_config_json_reads_as_its_preset(file, preset):
    assert load_hf_config(FIXTURES / f"{file}.config.json") == PRESETS[preset]


def _data(file):
    import json
    return json.loads((FIXTURES / f"{file}.config.json").read_text())


def test_a_quantization_method_a_family_does_not_ship_is_an_error_naming_the_key():
    data = _data("deepseek-v3")
    data["quantization_config"]["quant_method"] = "awq"
    with pytest.raises(InputError, match=r"^f: quantization_config\.quant_method: 'awq' is not supported for "
                                         r"model_type 'deepseek_v3' \(fp8\)$"):
        parse_hf_config(data, file="f", name="x")


def test_other_families_still_reject_quantized_checkpoints():
    data = _data("qwen3-30b-a3b")
    data["quantization_config"] = {"quant_method": "fp8"}
    with pytest.raises(InputError, match="^f: quantization_config: quantized weights are not supported"):
        parse_hf_config(data, file="f", name="x")


def test_a_gpt_oss_swiglu_limit_other_than_7_is_an_error():
    data = _data("gpt-oss-20b")
    data["swiglu_limit"] = 10.0
    with pytest.raises(InputError, match=r"^f: swiglu_limit: 10.0 is not supported"):
        parse_hf_config(data, file="f", name="x")


def test_a_deepseek_group_limited_greedy_router_is_an_error_not_an_approximation():
    data = _data("deepseek-v3")
    data.update(topk_method="group_limited_greedy", scoring_func="softmax")
    with pytest.raises(InputError, match=r"^f: topk_method: 'group_limited_greedy' is not supported"):
        parse_hf_config(data, file="f", name="x")


def test_an_unknown_key_inside_llama4_text_config_names_its_path():
    data = _data("llama4-scout-17b-16e")
    data["text_config"]["moe_capacity"] = 2
    with pytest.raises(InputError, match=r"^f: text_config\.moe_capacity: unknown key for model_type 'llama4_text'$"):
        parse_hf_config(data, file="f", name="x")


def test_gpt_oss_layers_alternate_sliding_and_full_and_llama4_rope_layers_are_chunked():
    oss, scout = PRESETS["gpt-oss-20b"], PRESETS["llama4-scout"]
    assert [oss.layer_attention(i) for i in (0, 1)] == [AttentionKind.SLIDING, AttentionKind.FULL]
    assert [scout.layer_attention(i) for i in (2, 3)] == [AttentionKind.CHUNKED, AttentionKind.FULL]
    assert not scout.layer_has_rope(3) and scout.layer_has_rope(2)


def test_the_kv_cache_of_mixed_layers_caps_only_the_windowed_ones():
    m = PRESETS["gpt-oss-20b"]
    per_layer = 2 * 8 * 64 * 2  # K and V, 8 KV heads of 64, bf16
    assert m.kv_bytes(1000) == (12 * 1000 + 12 * 128) * per_layer


def test_a_sliding_layer_reads_at_most_the_window_and_a_full_layer_everything():
    m = PRESETS["gpt-oss-20b"]
    stage = Stage.decode(2, 1000)
    sliding, full = (build_layer(m, stage, i).op("attn_decode") for i in (0, 1))
    kv_B = 2 * 8 * 64 * 2  # K and V of one token, bf16
    assert sliding.inputs[1].nbytes == 2 * 128 * kv_B  # 2 requests, 128 keys each
    assert full.inputs[1].nbytes == 2 * 1000 * kv_B


def test_sinks_add_one_logit_per_head_and_query_row():
    m = PRESETS["gpt-oss-20b"]
    stage = Stage.decode(2, 1000)
    with_sinks = build_layer(m, stage, 1).op("attn_decode")
    without = build_layer(dataclasses.replace(m, attention_sinks=False), stage, 1).op("attn_decode")
    assert with_sinks.estimates.flops - without.estimates.flops == 2 * 64 * P.SOFTMAX_FLOPS
    assert with_sinks.inputs[-1].shape == (64,)


def test_chunked_attention_pairs_restart_at_every_chunk():
    assert chunked_pairs(0, 10, 4) == (1 + 2 + 3 + 4) * 2 + 1 + 2
    assert chunked_pairs(6, 2, 4) == 3 + 4
    m = PRESETS["llama4-scout"]
    attn = build_layer(m, Stage.decode(1, 8192 + 5), 0).op("attn_decode")
    assert attn.params["ctx_tokens"] == (8197,) and attn.inputs[1].shape[1] == 5


def test_layers_without_rope_skip_it_and_scale_their_queries_instead():
    m = PRESETS["llama4-scout"]
    names = {op.name.split(".", 1)[1] for op in build_layer(m, Stage.decode(1, 64), 3).ops}
    assert "rope" not in names and "q_scale" in names and "qk_norm" not in names
    names = {op.name.split(".", 1)[1] for op in build_layer(m, Stage.decode(1, 64), 2).ops}
    assert {"rope", "qk_norm"} <= names


def test_group_limited_sigmoid_routing_costs_its_passes():
    m = PRESETS["deepseek-v3"]
    per_row = (3 * 256 + 256  # sigmoid, correction bias
               + 2 * 256 + 8 + 4 * 8  # the two largest per group, group sums, group selection
               + 8 * 256 * 4 // 8  # top-8 among the 4 kept groups
               + 2 * 8 + 8)  # renormalising, routed scaling
    assert topk_flops(m, 3) == 3 * per_row


def test_gpt_oss_expert_ops_carry_their_biases_and_the_o_projection_its_bias():
    m = PRESETS["gpt-oss-20b"]
    layer = build_layer(m, Stage.decode(4, 64), 0)
    expert = next(op for op in layer.ops if ".expert." in op.name)
    assert [t.shape for t in expert.inputs[-2:]] == [(2 * 2880,), (2880,)]
    assert layer.op("o_proj").inputs[-1].shape == (2880,)
    assert layer.op("router").inputs[-1].shape == (32,)


def test_a_correction_bias_needs_sigmoid_scoring():
    with pytest.raises(ConfigError, match="^a correction bias needs sigmoid scoring, got softmax$"):
        Router(correction_bias=True)


def test_topk_group_cannot_exceed_n_group():
    with pytest.raises(ConfigError, match=r"^topk_group \(5\) exceeds n_group \(4\)$"):
        Router(scoring=RouterScoring.SIGMOID, n_group=4, topk_group=5)


def test_a_dense_model_takes_no_router():
    with pytest.raises(ConfigError, match=r"^a router or expert biases in a dense model \(num_experts 0\)$"):
        dataclasses.replace(PRESETS["llama-2-7b"], router=Router(scoring=RouterScoring.SIGMOID))


def test_full_attention_layers_need_a_window_or_chunk():
    with pytest.raises(ConfigError, match="^full_attention_layers without a sliding_window"):
        dataclasses.replace(PRESETS["llama-2-7b"], full_attention_layers=(1,))


def test_a_weight_quant_of_an_unknown_kind_is_an_error():
    with pytest.raises(ConfigError, match="^weight_quant kind must be one of fp8_e4m3, mxfp4, got 'int4'$"):
        WeightQuant(kind="int4", block=(32,), scope="linear")


def test_n_group_must_divide_the_experts():
    with pytest.raises(ConfigError, match=r"^n_group \(3\) does not divide num_experts \(256\)$"):
        dataclasses.replace(PRESETS["deepseek-v3"], router=Router(scoring=RouterScoring.SIGMOID, n_group=3,
                                                                   topk_group=3))
