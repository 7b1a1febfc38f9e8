"""config.json loading: the two real fixtures and a real-shaped config of every family."""

import json
from pathlib import Path

import pytest

from opbsim.isa.types import DType
from opbsim.workloads import PRESETS, FFNAct, Norm, QKNorm, load_hf_config, load_model

FIXTURES = Path(__file__).parents[2] / "fixtures"


def write(tmp_path: Path, config: dict, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config, indent=2))
    return path


def test_the_mixtral_fixture_loads_and_equals_the_preset():
    m = load_hf_config(FIXTURES / "mixtral-8x7b-v0.1.config.json")
    assert m == PRESETS["mixtral-8x7b"]
    assert m.name == "mixtral-8x7b-v0.1"
    assert m.source.endswith("mixtral-8x7b-v0.1.config.json")


def test_the_olmoe_fixture_loads_and_equals_the_preset():
    m = load_hf_config(FIXTURES / "olmoe-1b-7b-0924.config.json")
    assert m == PRESETS["olmoe-1b-7b-0924"]
    assert m.qk_norm is QKNorm.FULL  # OlmoeAttention normalises the whole q and k


LLAMA_3_70B = {  # meta-llama/Meta-Llama-3-70B
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 8192,
    "initializer_range": 0.02, "intermediate_size": 28672, "max_position_embeddings": 8192, "model_type": "llama",
    "num_attention_heads": 64, "num_hidden_layers": 80, "num_key_value_heads": 8, "pretraining_tp": 1,
    "rms_norm_eps": 1e-05, "rope_scaling": None, "rope_theta": 500000.0, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 128256,
}


def test_llama_3_70b_config_equals_the_preset(tmp_path):
    assert load_hf_config(write(tmp_path, LLAMA_3_70B)) == PRESETS["llama-3-70b"]


def test_llama_without_num_key_value_heads_is_mha_as_in_transformers(tmp_path):
    config = {k: v for k, v in LLAMA_3_70B.items() if k != "num_key_value_heads"}
    m = load_hf_config(write(tmp_path, config))
    assert m.num_kv_heads == 64 and m.attention == "MHA"


def test_the_name_of_a_config_json_is_its_folder(tmp_path):
    (tmp_path / "Meta-Llama-3-70B").mkdir()
    m = load_hf_config(write(tmp_path / "Meta-Llama-3-70B", LLAMA_3_70B))
    assert m.name == "Meta-Llama-3-70B"
    assert load_model(str(tmp_path / "Meta-Llama-3-70B")) == m  # a folder holding config.json


MISTRAL_7B = {  # mistralai/Mistral-7B-v0.1
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
    "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": True, "vocab_size": 32000,
}


def test_mistral_7b_keeps_its_sliding_window(tmp_path):
    m = load_hf_config(write(tmp_path, MISTRAL_7B))
    assert (m.hidden_size, m.num_layers, m.num_kv_heads, m.dense_ffn, m.sliding_window) == (4096, 32, 8, 14336, 4096)
    assert round(m.params_total / 1e9, 2) == 7.24  # Mistral 7B: 7.24e9
    assert m.kv_bytes(32768) == 4096 * m.kv_bytes_per_token  # the window caps the cache


def test_mistral_nemo_takes_head_dim_from_the_file(tmp_path):
    nemo = MISTRAL_7B | {"hidden_size": 5120, "num_hidden_layers": 40, "head_dim": 128, "vocab_size": 131072,
                         "sliding_window": None, "rope_theta": 1000000.0}  # mistralai/Mistral-Nemo-Base-2407
    m = load_hf_config(write(tmp_path, nemo))
    assert m.head_dim == 128 and m.q_dim == 32 * 128  # not 5120 / 32 = 160
    assert m.sliding_window == 0
    assert round(m.params_total / 1e9, 1) == 12.2


QWEN15_MOE = {  # Qwen/Qwen1.5-MoE-A2.7B
    "architectures": ["Qwen2MoeForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "decoder_sparse_step": 1, "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 2048,
    "initializer_range": 0.02, "intermediate_size": 5632, "max_position_embeddings": 8192, "max_window_layers": 21,
    "model_type": "qwen2_moe", "moe_intermediate_size": 1408, "norm_topk_prob": False, "num_attention_heads": 16,
    "num_experts": 60, "num_experts_per_tok": 4, "num_hidden_layers": 24, "num_key_value_heads": 16,
    "output_router_logits": False, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001,
    "shared_expert_intermediate_size": 5632, "sliding_window": 32768, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.39.0.dev0", "use_cache": True, "use_sliding_window": False,
    "vocab_size": 151936,
}


def test_qwen15_moe_config_equals_the_preset(tmp_path):
    m = load_hf_config(write(tmp_path, QWEN15_MOE))
    assert m == PRESETS["qwen1.5-moe-a2.7b"]
    assert m.dense_ffn == 0  # intermediate_size is unused: every layer is MoE


def test_qwen_mlp_only_layers_become_leading_dense_layers(tmp_path):
    m = load_hf_config(write(tmp_path, QWEN15_MOE | {"mlp_only_layers": [0, 1]}))
    assert m.first_dense_layers == 2 and m.dense_ffn == 5632
    assert m.moe_layers == tuple(range(2, 24))


def test_qwen_decoder_sparse_step_makes_every_nth_layer_moe(tmp_path):
    m = load_hf_config(write(tmp_path, QWEN15_MOE | {"decoder_sparse_step": 2}))
    assert m.moe_layers == tuple(range(1, 24, 2))  # (i + 1) % 2 == 0 in Qwen2MoeDecoderLayer


QWEN3_30B_A3B = {  # Qwen/Qwen3-30B-A3B
    "architectures": ["Qwen3MoeForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 151643, "decoder_sparse_step": 1, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 6144, "max_position_embeddings": 40960,
    "max_window_layers": 48, "mlp_only_layers": [], "model_type": "qwen3_moe", "moe_intermediate_size": 768,
    "norm_topk_prob": True, "num_attention_heads": 32, "num_experts": 128, "num_experts_per_tok": 8,
    "num_hidden_layers": 48, "num_key_value_heads": 4, "output_router_logits": False, "rms_norm_eps": 1e-06,
    "rope_scaling": None, "rope_theta": 1000000.0, "router_aux_loss_coef": 0.001, "sliding_window": None,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936,
}


def test_qwen3_30b_a3b_has_30_5e9_parameters_3_3e9_active(tmp_path):
    m = load_hf_config(write(tmp_path, QWEN3_30B_A3B))
    assert (m.num_heads, m.num_kv_heads, m.head_dim, m.num_experts, m.top_k, m.expert_ffn) == (32, 4, 128, 128, 8, 768)
    assert m.qk_norm is QKNorm.PER_HEAD and m.num_shared_experts == 0
    assert round(m.params_total / 1e9, 1) == 30.5  # Qwen3 model card: 30.5B total, 3.3B activated
    assert 3.3 <= m.params_active / 1e9 < 3.4  # 3.35e9: the card rounds down


DEEPSEEK_MOE_16B = {  # deepseek-ai/deepseek-moe-16b-base
    "architectures": ["DeepseekForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "aux_loss_alpha": 0.001, "bos_token_id": 100000, "eos_token_id": 100001, "first_k_dense_replace": 1,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 10944,
    "max_position_embeddings": 4096, "model_type": "deepseek", "moe_intermediate_size": 1408, "moe_layer_freq": 1,
    "n_routed_experts": 64, "n_shared_experts": 2, "norm_topk_prob": False, "num_attention_heads": 16,
    "num_experts_per_tok": 6, "num_hidden_layers": 28, "num_key_value_heads": 16, "pretraining_tp": 1,
    "rms_norm_eps": 1e-06, "rope_scaling": None, "rope_theta": 10000, "scoring_func": "softmax", "seq_aux": True,
    "tie_word_embeddings": False, "torch_dtype": "bfloat16", "transformers_version": "4.36.2", "use_cache": True,
    "vocab_size": 102400,
}


def test_deepseek_moe_16b_config_equals_the_preset(tmp_path):
    assert load_hf_config(write(tmp_path, DEEPSEEK_MOE_16B)) == PRESETS["deepseek-moe-16b"]


def test_deepseek_without_routed_experts_is_dense(tmp_path):
    m = load_hf_config(write(tmp_path, DEEPSEEK_MOE_16B | {"n_routed_experts": None}))
    assert not m.is_moe and m.dense_ffn == 10944


DEEPSEEK_V2_LITE = {  # deepseek-ai/DeepSeek-V2-Lite
    "architectures": ["DeepseekV2ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "aux_loss_alpha": 0.001, "bos_token_id": 100000, "eos_token_id": 100001, "first_k_dense_replace": 1,
    "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 10944,
    "kv_lora_rank": 512, "max_position_embeddings": 163840, "model_type": "deepseek_v2",
    "moe_intermediate_size": 1408, "moe_layer_freq": 1, "n_group": 1, "n_routed_experts": 64, "n_shared_experts": 2,
    "norm_topk_prob": False, "num_attention_heads": 16, "num_experts_per_tok": 6, "num_hidden_layers": 27,
    "num_key_value_heads": 16, "pretraining_tp": 1, "q_lora_rank": None, "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "routed_scaling_factor": 1.0, "scoring_func": "softmax", "seq_aux": True,
    "tie_word_embeddings": False, "topk_group": 1, "topk_method": "greedy", "torch_dtype": "bfloat16",
    "transformers_version": "4.33.1", "use_cache": True, "v_head_dim": 128, "vocab_size": 102400,
}


def test_the_deepseek_v2_lite_config_with_its_yarn_rope_scaling_equals_the_mla_preset(tmp_path):
    m = load_hf_config(write(tmp_path, DEEPSEEK_V2_LITE))
    assert m == PRESETS["deepseek-v2-lite"]
    assert str(m.rope_scaling) == "yarn x40"  # recorded; the rope op's cost is that of unscaled RoPE
    assert m.mla.q_lora_rank == 0  # null: queries projected directly


DBRX_BASE = {  # databricks/dbrx-base
    "architectures": ["DbrxForCausalLM"],
    "attn_config": {"clip_qkv": 8, "kv_n_heads": 8, "model_type": "", "rope_theta": 500000},
    "d_model": 6144, "emb_pdrop": 0.0,
    "ffn_config": {"ffn_hidden_size": 10752, "model_type": "", "moe_jitter_eps": 0, "moe_loss_weight": 0.05,
                   "moe_num_experts": 16, "moe_top_k": 4},
    "initializer_range": 0.02, "max_seq_len": 32768, "model_type": "dbrx", "n_heads": 48, "n_layers": 40,
    "output_router_logits": False, "resid_pdrop": 0.0, "router_aux_loss_coef": 0.05, "tie_word_embeddings": False,
    "torch_dtype": "bfloat16", "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 100352,
}


def test_dbrx_reads_its_nested_attn_and_ffn_configs(tmp_path):
    m = load_hf_config(write(tmp_path, DBRX_BASE))
    assert (m.hidden_size, m.num_layers, m.num_heads, m.num_kv_heads, m.head_dim) == (6144, 40, 48, 8, 128)
    assert (m.num_experts, m.top_k, m.expert_ffn, m.ffn_act) == (16, 4, 10752, FFNAct.SWIGLU)
    assert m.norm is Norm.LAYER_NO_BIAS
    assert round(m.params_total / 1e9) == 132 and round(m.params_active / 1e9) == 36  # DBRX: 132B total, 36B active


MIXTRAL_8X22B = {  # mistralai/Mixtral-8x22B-v0.1
    "architectures": ["MixtralForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 6144, "initializer_range": 0.02, "intermediate_size": 16384,
    "max_position_embeddings": 65536, "model_type": "mixtral", "num_attention_heads": 48, "num_experts_per_tok": 2,
    "num_hidden_layers": 56, "num_key_value_heads": 8, "num_local_experts": 8, "output_router_logits": False,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000, "router_aux_loss_coef": 0.001, "router_jitter_noise": 0.0,
    "sliding_window": None, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.0.dev0", "use_cache": True, "vocab_size": 32000,
}


def test_mixtral_8x22b_config_equals_the_preset(tmp_path):
    assert load_hf_config(write(tmp_path, MIXTRAL_8X22B)) == PRESETS["mixtral-8x22b"]


@pytest.mark.parametrize("value, dtype", [("bfloat16", DType.BF16), ("float16", DType.BF16), ("float32", DType.FP32)])
def test_torch_dtype_sets_the_bytes_per_element(tmp_path, value, dtype):
    m = load_hf_config(write(tmp_path, LLAMA_3_70B | {"torch_dtype": value}))
    assert m.dtype is dtype


def test_newer_files_may_name_the_dtype_dtype(tmp_path):
    config = {k: v for k, v in LLAMA_3_70B.items() if k != "torch_dtype"} | {"dtype": "bfloat16"}
    assert load_hf_config(write(tmp_path, config)) == PRESETS["llama-3-70b"]
