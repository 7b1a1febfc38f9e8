"""ModelConfig: parameter counts, KV-cache sizes, layer structure and construction errors."""

import dataclasses

import pytest

from opbsim.isa.types import DType
from opbsim.workloads import MLA, ConfigError, FFNAct, ModelConfig, Norm, QKNorm, get_preset

H, L = 4096, 32  # Mixtral-8x7B hidden size and layers


def tiny(**overrides) -> ModelConfig:
    base = dict(name="tiny", hidden_size=64, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=16, vocab_size=100,
                dense_ffn=128, rope_theta=10000.0, norm_eps=1e-5)
    return ModelConfig(**(base | overrides))


def test_mixtral_8x7b_has_46_7e9_parameters_of_which_12_9e9_are_active_per_token():
    m = get_preset("mixtral-8x7b")
    attention = H * 4096 + 2 * H * 1024 + 4096 * H  # q, k and v (8 kv heads x 128), o
    expert = 3 * H * 14336  # gate, up, down
    per_layer = attention + 8 * expert + 8 * H + 2 * H  # 8 experts, router, 2 RMSNorm weights
    embeddings = 2 * 32000 * H  # input embedding and LM head (untied)
    assert m.params_total == L * per_layer + embeddings + H  # + final norm
    assert m.params_total == 46_702_792_704
    assert m.params_active == m.params_total - L * (8 - 2) * expert  # a token uses 2 of the 8 experts
    assert m.params_active == 12_879_925_248
    assert round(m.params_total / 1e9, 1) == 46.7 and round(m.params_active / 1e9, 1) == 12.9


def test_llama_3_70b_has_70_6e9_parameters_all_active():
    m = get_preset("llama-3-70b")
    h = 8192
    per_layer = h * 8192 + 2 * h * 1024 + 8192 * h + 3 * h * 28672 + 2 * h  # q, k/v (8 x 128), o, SwiGLU, norms
    assert m.params_total == 80 * per_layer + 2 * 128256 * h + h
    assert m.params_total == 70_553_706_496
    assert round(m.params_total / 1e9, 1) == 70.6
    assert m.params_active == m.params_total


def test_component_counts_add_up_to_the_total():
    c = get_preset("deepseek-moe-16b").param_counts()
    assert c.total == (c.embeddings + c.lm_head + c.attention + c.norms + c.dense_ffn + c.routers + c.experts
                       + c.shared_experts)
    assert c.dense_ffn == 1 * 3 * 2048 * 10944  # layer 0 is dense
    assert c.shared_experts == 27 * 2 * 3 * 2048 * 1408  # 27 MoE layers, 2 shared experts of 1408
    assert c.experts_active == 27 * 6 * 3 * 2048 * 1408  # top-6 routed experts per MoE layer


def test_tied_embeddings_count_the_table_once_and_learned_positions_add_rows():
    untied, tied = tiny(), tiny(tie_word_embeddings=True)
    assert untied.params_total - tied.params_total == 100 * 64  # the LM head: vocab x hidden
    assert tiny(learned_positions=10, rope_theta=0.0).params_total - untied.params_total == 10 * 64


def test_qkv_bias_qk_norm_and_layernorm_add_their_vector_parameters():
    base = tiny().params_total
    assert tiny(qkv_bias=True).params_total - base == 4 * (4 + 2 * 2) * 16  # layers x (q + k + v heads) x head_dim
    assert tiny(qk_norm=QKNorm.PER_HEAD).params_total - base == 4 * 2 * 16  # one head_dim weight for q and k
    assert tiny(qk_norm=QKNorm.FULL).params_total - base == 4 * (4 + 2) * 16  # full q and k widths
    assert tiny(norm=Norm.LAYER).params_total - base == (2 * 4 + 1) * 64  # a bias per norm


def test_kv_cache_bytes_per_token_count_k_and_v_of_every_kv_head_and_layer():
    assert get_preset("mixtral-8x7b").kv_bytes_per_token == 2 * 8 * 128 * 2 * 32  # K and V, kv heads, dim, bf16, layers
    assert get_preset("llama-3-70b").kv_bytes_per_token == 2 * 8 * 128 * 2 * 80
    assert get_preset("opt-66b").kv_bytes_per_token == 2 * 72 * 128 * 2 * 64  # MHA: 72 kv heads
    assert get_preset("mixtral-8x7b").kv_bytes(4096) == 4096 * 131072


def test_mla_caches_one_latent_and_rope_key_per_token_and_layer():
    m = get_preset("deepseek-v2-lite")
    assert m.kv_bytes_per_token == (512 + 64) * 2 * 27  # kv_lora_rank + rope dim, bf16, layers
    assert m.attention == "MLA" and m.group_size == 16  # all 16 heads share the latent


def test_deepseek_v2_mla_counts_236e9_parameters():
    m = get_preset("deepseek-v2")
    h, heads = 5120, 128
    attention = (h * 1536 + 1536 + 1536 * heads * 192  # q_a, its norm, q_b (nope 128 + rope 64)
                 + h * (512 + 64) + 512 + 512 * heads * (128 + 128)  # kv_a with the rope key, norm, kv_b
                 + heads * 128 * h)  # o
    assert m.attention_params_per_layer == attention
    assert round(m.params_total / 1e9) == 236


def test_a_sliding_window_caps_the_kv_cache_of_a_request():
    m = tiny(sliding_window=8)
    assert m.kv_bytes(100) == 8 * m.kv_bytes_per_token
    assert m.kv_bytes(5) == 5 * m.kv_bytes_per_token


def test_glam_puts_moe_in_every_second_layer_starting_at_layer_1():
    m = get_preset("glam-143b")
    assert m.moe_layers == tuple(range(1, 32, 2))
    assert round(m.params_total / 1e9) == 143  # Duplex Table I


def test_deepseek_keeps_its_first_layer_dense():
    m = get_preset("deepseek-moe-16b")
    assert m.moe_layers == tuple(range(1, 28))
    assert not m.is_moe_layer(0)


def test_attention_kind_follows_from_the_head_counts():
    assert tiny(num_kv_heads=4).attention == "MHA"
    assert tiny(num_kv_heads=2).attention == "GQA"
    assert tiny(num_kv_heads=1).attention == "MQA"
    assert get_preset("mixtral-8x7b").group_size == 4
    assert get_preset("grok-1").group_size == 6
    assert get_preset("llama-3-70b").group_size == 8


def test_ffn_forms_have_three_or_two_matrices():
    assert FFNAct.SWIGLU.num_matrices == 3 and FFNAct.GEGLU.num_matrices == 3
    assert FFNAct.RELU.num_matrices == 2 and FFNAct.GELU.num_matrices == 2
    opt = get_preset("opt-66b")
    assert opt.param_counts().dense_ffn == 64 * 2 * 9216 * 36864


def test_name_and_source_take_no_part_in_equality():
    assert tiny() == dataclasses.replace(tiny(), name="other", source="elsewhere")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny().hidden_size = 1


def test_fp32_weights_double_the_bytes():
    assert tiny(dtype=DType.FP32).weight_bytes == 2 * tiny().weight_bytes


@pytest.mark.parametrize("overrides, field, message", [
    (dict(hidden_size=0), "hidden_size", "hidden_size must be a positive integer, got 0"),
    (dict(num_layers=2.0), "num_layers", "num_layers must be a positive integer, got 2.0"),
    (dict(head_dim=True), "head_dim", "head_dim must be a positive integer, got True"),
    (dict(dense_ffn=-1), "dense_ffn", "dense_ffn must be an integer >= 0, got -1"),
    (dict(num_kv_heads=3), "num_kv_heads", "num_heads (4) is not a multiple of num_kv_heads (3)"),
    (dict(dense_ffn=0), "dense_ffn", "dense_ffn is 0 but the model has dense layers"),
    (dict(top_k=2), "top_k", "top_k is 2 but num_experts is 0 (a dense model)"),
    (dict(moe_every=2), "moe_every", "moe_every is 2 but num_experts is 0"),
    (dict(num_experts=8, top_k=9, expert_ffn=32), "top_k", "top_k (9) must be in 1..num_experts (8)"),
    (dict(num_experts=8, top_k=0, expert_ffn=32), "top_k", "top_k (0) must be in 1..num_experts (8)"),
    (dict(num_experts=8, top_k=2), "expert_ffn", "expert_ffn must be positive in a MoE model"),
    (dict(num_experts=8, top_k=2, expert_ffn=32, dense_ffn=0, num_shared_experts=1), "shared_ffn",
     "num_shared_experts (1) and shared_ffn (0) must both be 0 or both positive"),
    (dict(num_experts=8, top_k=2, expert_ffn=32, dense_ffn=0, shared_expert_gate=True), "shared_expert_gate",
     "shared_expert_gate is set but there is no shared expert"),
    (dict(num_experts=8, top_k=2, expert_ffn=32, first_dense_layers=4), "first_dense_layers",
     "no MoE layer: first_dense_layers (4) and moe_every (1) leave none of the 4 layers"),
    (dict(num_experts=8, top_k=2, expert_ffn=32), "dense_ffn", "dense_ffn is 128 but the model has no dense layer"),
    (dict(mla=MLA(q_lora_rank=0, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8)),
     "num_kv_heads", "MLA needs num_kv_heads == num_heads (4), got 2"),
    (dict(num_kv_heads=4, mla=MLA(q_lora_rank=0, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=4,
                                  v_head_dim=8)),
     "head_dim", "MLA needs head_dim == qk_nope_head_dim + qk_rope_head_dim (12), got 16"),
    (dict(dtype="bf16"), "dtype", "dtype must be a DType, got 'bf16'"),
    (dict(rope_theta=-1.0), "rope_theta", "rope_theta must be a finite number >= 0, got -1.0"),
    (dict(rope_theta=float("inf")), "rope_theta", "rope_theta must be a finite number >= 0, got inf"),
    (dict(rope_theta=float("nan")), "rope_theta", "rope_theta must be a finite number >= 0, got nan"),
    (dict(rope_theta="1e4"), "rope_theta", "rope_theta must be a finite number >= 0, got '1e4'"),
    (dict(rope_theta=True), "rope_theta", "rope_theta must be a finite number >= 0, got True"),
    (dict(norm_eps=0.0), "norm_eps", "norm_eps must be a finite number > 0, got 0.0"),
    (dict(norm_eps=-1e-5), "norm_eps", "norm_eps must be a finite number > 0, got -1e-05"),
    (dict(norm_eps=None), "norm_eps", "norm_eps must be a finite number > 0, got None"),
    (dict(norm_topk_prob=1), "norm_topk_prob", "norm_topk_prob must be True or False, got 1"),
    (dict(norm_topk_prob=True), "norm_topk_prob", "norm_topk_prob is set but num_experts is 0"),
    (dict(learned_positions=10), "rope_theta",
     "rope_theta is 10000.0 but the model has learned positions (learned_positions 10)"),
    (dict(num_kv_heads=4, head_dim=16, rope_theta=0.0,
          mla=MLA(q_lora_rank=0, kv_lora_rank=8, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8)),
     "rope_theta", "MLA needs rope_theta > 0 (its shared RoPE key), got 0.0"),
])
def test_an_invalid_config_names_the_field_with_an_exact_message(overrides, field, message):
    with pytest.raises(ConfigError) as err:
        tiny(**overrides)
    assert str(err.value) == message
    assert err.value.field == field


def test_rope_theta_and_norm_eps_have_no_default():
    with pytest.raises(TypeError, match=r"missing 2 required keyword-only arguments: 'norm_eps' and 'rope_theta'"):
        ModelConfig(name="x", hidden_size=64, num_layers=1, num_heads=4, num_kv_heads=4, head_dim=16, vocab_size=10,
                    dense_ffn=32)


def test_rope_theta_and_norm_eps_are_stored_as_floats():
    m = tiny(rope_theta=500000)
    assert m.rope_theta == 500000.0 and type(m.rope_theta) is float and type(m.norm_eps) is float


def test_a_norm_epsilon_above_a_tenth_is_refused():
    with pytest.raises(ConfigError, match=r"^norm_eps must be at most 0\.1 .*, got 1\.0$"):
        tiny(norm_eps=1)


def test_norm_topk_prob_defaults_to_false_and_may_be_set_in_a_moe_model():
    moe = dict(num_experts=8, top_k=2, expert_ffn=32, dense_ffn=0)
    assert not tiny(**moe).norm_topk_prob
    assert tiny(**moe, norm_topk_prob=True).norm_topk_prob
    assert not tiny().norm_topk_prob  # a dense model


def test_a_zero_rope_theta_means_no_rope():
    assert tiny().has_rope
    assert not tiny(rope_theta=0.0).has_rope
    assert not get_preset("opt-66b").has_rope  # learned positions
    assert not get_preset("glam-143b").has_rope  # relative position bias


def test_the_three_constants_take_part_in_equality():
    assert tiny() != tiny(rope_theta=500000.0)
    assert tiny() != tiny(norm_eps=1e-6)
    moe = dict(num_experts=8, top_k=2, expert_ffn=32, dense_ffn=0)
    assert tiny(**moe) != tiny(**moe, norm_topk_prob=True)


def test_mla_sizes_must_be_positive():
    with pytest.raises(ConfigError, match=r"^kv_lora_rank must be a positive integer, got 0$"):
        MLA(q_lora_rank=0, kv_lora_rank=0, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8)


def test_is_moe_layer_rejects_a_layer_outside_the_model():
    with pytest.raises(IndexError, match=r"layer 4 is outside 0..3"):
        tiny().is_moe_layer(4)
