"""config.json errors: one line naming the file and the key, never a silent default."""

import json

import pytest

from opbsim.errors import InputError
from opbsim.workloads import load_hf_config, load_model

from .test_hf_families import DBRX_BASE, DEEPSEEK_MOE_16B, LLAMA_3_70B, MIXTRAL_8X22B, QWEN15_MOE, write

SUPPORTED = ("dbrx, deepseek, deepseek_v2, deepseek_v3, gpt_oss, llama, llama4, llama4_text, mistral, mixtral, olmoe, "
             "qwen2_moe, qwen3_moe")


def without(config: dict, key: str) -> dict:
    return {k: v for k, v in config.items() if k != key}


CASES = [
    ("unsupported family", MIXTRAL_8X22B | {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]},
     f"model_type: 'gpt2' is not a supported family (supported: {SUPPORTED})"),
    ("no model_type", without(MIXTRAL_8X22B, "model_type"), "model_type: missing"),
    ("missing expert count", without(MIXTRAL_8X22B, "num_local_experts"), "num_local_experts: missing"),
    ("null counts as missing", MIXTRAL_8X22B | {"intermediate_size": None}, "intermediate_size: missing"),
    ("mixtral needs kv heads", without(MIXTRAL_8X22B, "num_key_value_heads"), "num_key_value_heads: missing"),
    ("top-k above experts", MIXTRAL_8X22B | {"num_experts_per_tok": 9},
     "num_experts_per_tok: 9 exceeds num_local_experts (8)"),
    ("architecture of another family", MIXTRAL_8X22B | {"architectures": ["LlamaForCausalLM"]},
     "architectures: 'LlamaForCausalLM' contradicts model_type 'mixtral' (expected MixtralForCausalLM)"),
    ("kv heads not dividing heads", MIXTRAL_8X22B | {"num_key_value_heads": 5},
     "num_key_value_heads: 5 does not divide num_attention_heads (48)"),
    ("hidden not a multiple of heads", MIXTRAL_8X22B | {"hidden_size": 6100},
     "hidden_size: 6100 is not a multiple of num_attention_heads (48)"),
    ("a string for a count", MIXTRAL_8X22B | {"hidden_size": "6144"},
     'hidden_size: expected a positive integer, got "6144"'),
    ("a boolean for a count", MIXTRAL_8X22B | {"num_hidden_layers": True},
     "num_hidden_layers: expected a positive integer, got true"),
    ("zero layers", MIXTRAL_8X22B | {"num_hidden_layers": 0}, "num_hidden_layers: expected a positive integer, got 0"),
    ("unknown key", MIXTRAL_8X22B | {"num_dense_layers": 2}, "num_dense_layers: unknown key for model_type 'mixtral'"),
    ("quantized", MIXTRAL_8X22B | {"quantization_config": {"bits": 4}},
     "quantization_config: quantized weights are not supported (opbsim models bf16/fp16/fp32 weights)"),
    ("no dtype", without(MIXTRAL_8X22B, "torch_dtype"),
     "torch_dtype: missing (the weights' dtype: bfloat16, float16 or float32)"),
    ("two dtypes that disagree", MIXTRAL_8X22B | {"dtype": "float32"},
     "dtype: 'float32' contradicts torch_dtype 'bfloat16'"),
    ("unsupported dtype", MIXTRAL_8X22B | {"torch_dtype": "int8"},
     "torch_dtype: 'int8' is not a supported dtype (bfloat16, float16, float32)"),
    ("ungated activation", MIXTRAL_8X22B | {"hidden_act": "relu"},
     "hidden_act: 'relu' is not supported for a gated FFN (silu, swish, gelu, gelu_pytorch_tanh, gelu_new)"),
    ("tie flag not a boolean", MIXTRAL_8X22B | {"tie_word_embeddings": "no"},
     'tie_word_embeddings: expected true or false, got "no"'),
    ("sliding-window layers", MIXTRAL_8X22B | {"layer_types": ["sliding_attention"] * 56},
     'layer_types: only "full_attention" layers are supported'),
    ("llama attention bias", LLAMA_3_70B | {"attention_bias": True},
     "attention_bias: true is not supported (biases on q/k/v/o)"),
    ("qwen sliding windows", QWEN15_MOE | {"use_sliding_window": True, "sliding_window": 4096},
     "use_sliding_window: true is not supported (per-layer sliding windows)"),
    ("qwen dense layers not leading", QWEN15_MOE | {"mlp_only_layers": [3]},
     "mlp_only_layers: only leading layers 0..k-1 are supported, got [3]"),
    ("qwen dense prefix not a multiple of the step", QWEN15_MOE | {"mlp_only_layers": [0], "decoder_sparse_step": 2},
     "mlp_only_layers: 1 leading dense layers with decoder_sparse_step 2 is not supported "
     "(need a multiple of the step)"),
    ("qwen step beyond the layers", QWEN15_MOE | {"decoder_sparse_step": 25},
     "decoder_sparse_step: leaves no MoE layer among num_hidden_layers (24) with 0 dense layers first and "
     "decoder_sparse_step 25"),
    ("qwen dense layers need their width", without(QWEN15_MOE, "intermediate_size") | {"mlp_only_layers": [0]},
     "intermediate_size: missing"),
    ("deepseek all layers dense", DEEPSEEK_MOE_16B | {"first_k_dense_replace": 28},
     "first_k_dense_replace: 28 leaves no MoE layer of num_hidden_layers (28) although n_routed_experts is set"),
    ("deepseek moe every other layer", DEEPSEEK_MOE_16B | {"moe_layer_freq": 2},
     "moe_layer_freq: 2 is not supported (only 1: every layer after the dense ones)"),
    ("dbrx nested key missing", DBRX_BASE | {"ffn_config": without(DBRX_BASE["ffn_config"], "moe_top_k")},
     "ffn_config.moe_top_k: missing"),
    ("dbrx nested unknown key", DBRX_BASE | {"attn_config": DBRX_BASE["attn_config"] | {"alibi": True}},
     "attn_config.alibi: unknown key for model_type 'dbrx'"),
    ("dbrx top-k above experts", DBRX_BASE | {"ffn_config": DBRX_BASE["ffn_config"] | {"moe_top_k": 17}},
     "ffn_config.moe_top_k: 17 exceeds moe_num_experts (16)"),
    ("dbrx kv heads", DBRX_BASE | {"attn_config": DBRX_BASE["attn_config"] | {"kv_n_heads": 7}},
     "attn_config.kv_n_heads: 7 does not divide n_heads (48)"),
    ("dbrx section not an object", DBRX_BASE | {"ffn_config": 3}, "ffn_config: expected an object, got 3"),
    ("dbrx activation", DBRX_BASE | {"ffn_config": DBRX_BASE["ffn_config"] | {"ffn_act_fn": {"name": "relu"}}},
     "ffn_config.ffn_act_fn: expected {\"name\": \"silu\"} (or gelu), got {'name': 'relu'}"),
]


@pytest.mark.parametrize("config, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_config_is_one_line_naming_the_file_and_the_key(tmp_path, config, message):
    path = write(tmp_path, config)
    with pytest.raises(InputError) as err:
        load_hf_config(path)
    assert str(err.value) == f"{path}: {message}"
    assert "\n" not in str(err.value)


def test_a_file_that_is_not_json_names_line_and_column(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{\n  model_type: 1}")
    with pytest.raises(InputError) as err:
        load_hf_config(path)
    expected = "2:3: not valid JSON: Expecting property name enclosed in double quotes"
    assert str(err.value) == f"{path}:{expected}"


def test_a_json_list_is_not_a_config(tmp_path):
    path = write(tmp_path, [1, 2])
    with pytest.raises(InputError, match=r": expected a JSON object at the top level$"):
        load_hf_config(path)


def test_a_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError) as err:
        load_hf_config(tmp_path / "nope.json")
    assert str(err.value) == f"{tmp_path / 'nope.json'}: No such file or directory"


def test_a_name_that_is_neither_a_preset_nor_a_file(tmp_path):
    with pytest.raises(InputError) as err:
        load_model("mixtral-9x7b")
    assert str(err.value) == "unknown model 'mixtral-9x7b': not a preset (see `opbsim models`) and not a file"


def test_binary_junk_is_reported_as_not_utf8(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xff\xfe{}")
    with pytest.raises(InputError, match=r"not UTF-8 text \(byte 0\)$"):
        load_hf_config(path)


def test_every_key_of_the_real_configs_is_known(tmp_path):
    for config in (MIXTRAL_8X22B, LLAMA_3_70B, QWEN15_MOE, DEEPSEEK_MOE_16B, DBRX_BASE):
        load_hf_config(write(tmp_path, json.loads(json.dumps(config))))
