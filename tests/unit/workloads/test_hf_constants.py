"""config.json loading of rope_theta, the norm epsilon and norm_topk_prob: each family's key, its
transformers default when absent, and one-line errors for bad values (RoPE scaling: test_hf_rope.py)."""

import json
from pathlib import Path

import pytest

from opbsim.errors import InputError
from opbsim.workloads import PRESETS, load_hf_config

from .test_hf_families import (
    DBRX_BASE,
    DEEPSEEK_MOE_16B,
    DEEPSEEK_V2_LITE,
    LLAMA_3_70B,
    MISTRAL_7B,
    MIXTRAL_8X22B,
    QWEN3_30B_A3B,
    QWEN15_MOE,
    write,
)

FIXTURES = Path(__file__).parents[2] / "fixtures"

LLAMA_2_7B = {  # meta-llama/Llama-2-7b-hf: written before config.json carried rope_theta
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": None, "tie_word_embeddings": False,
    "torch_dtype": "float16", "transformers_version": "4.31.0.dev0", "use_cache": True, "vocab_size": 32000,
}
OLMOE = json.loads((FIXTURES / "olmoe-1b-7b-0924.config.json").read_text())
MIXTRAL_8X7B = json.loads((FIXTURES / "mixtral-8x7b-v0.1.config.json").read_text())


def without(config: dict, *keys: str) -> dict:
    return {k: v for k, v in config.items() if k not in keys}


def load(tmp_path, config: dict):
    return load_hf_config(write(tmp_path, config))


def constants(m) -> tuple:
    return m.rope_theta, m.norm_eps, m.norm_topk_prob


def test_the_fixtures_give_the_constants_of_their_files():
    mixtral = load_hf_config(FIXTURES / "mixtral-8x7b-v0.1.config.json")
    assert constants(mixtral) == (1e6, 1e-5, True)  # rope_theta 1000000.0, rms_norm_eps 1e-05; always renormalised
    assert mixtral == PRESETS["mixtral-8x7b"]
    olmoe = load_hf_config(FIXTURES / "olmoe-1b-7b-0924.config.json")
    assert constants(olmoe) == (10000.0, 1e-5, False)  # "norm_topk_prob": false
    assert olmoe == PRESETS["olmoe-1b-7b-0924"]


def test_the_real_llama_2_config_has_no_rope_theta_and_gets_llamas_default(tmp_path):
    m = load(tmp_path, LLAMA_2_7B)
    assert constants(m) == (10000.0, 1e-5, False)
    assert m == PRESETS["llama-2-7b"]


def test_integer_rope_theta_of_a_real_file_is_read_as_a_float(tmp_path):
    m = load(tmp_path, MIXTRAL_8X22B)  # "rope_theta": 1000000
    assert m.rope_theta == 1e6 and type(m.rope_theta) is float


# (family, config, key removed, field, the transformers class default)
ABSENT = [
    ("llama", LLAMA_3_70B, "rope_theta", "rope_theta", 10000.0),
    ("llama", LLAMA_3_70B, "rms_norm_eps", "norm_eps", 1e-6),
    ("mistral", MISTRAL_7B, "rope_theta", "rope_theta", 10000.0),
    ("mistral", MISTRAL_7B, "rms_norm_eps", "norm_eps", 1e-6),
    ("mixtral", MIXTRAL_8X22B, "rope_theta", "rope_theta", 1e6),  # MixtralConfig's default, not 10000
    ("mixtral", MIXTRAL_8X22B, "rms_norm_eps", "norm_eps", 1e-5),
    ("qwen2_moe", QWEN15_MOE, "rope_theta", "rope_theta", 10000.0),
    ("qwen2_moe", QWEN15_MOE, "rms_norm_eps", "norm_eps", 1e-6),
    ("qwen2_moe", QWEN15_MOE, "norm_topk_prob", "norm_topk_prob", False),
    ("qwen3_moe", QWEN3_30B_A3B, "rope_theta", "rope_theta", 10000.0),
    ("qwen3_moe", QWEN3_30B_A3B, "rms_norm_eps", "norm_eps", 1e-6),
    ("qwen3_moe", QWEN3_30B_A3B, "norm_topk_prob", "norm_topk_prob", False),
    ("olmoe", OLMOE, "rope_theta", "rope_theta", 10000.0),
    ("olmoe", OLMOE, "rms_norm_eps", "norm_eps", 1e-5),
    ("olmoe", OLMOE, "norm_topk_prob", "norm_topk_prob", False),
    ("deepseek", DEEPSEEK_MOE_16B, "rope_theta", "rope_theta", 10000.0),
    ("deepseek", DEEPSEEK_MOE_16B, "rms_norm_eps", "norm_eps", 1e-6),
    ("deepseek", DEEPSEEK_MOE_16B, "norm_topk_prob", "norm_topk_prob", False),
    ("deepseek_v2", DEEPSEEK_V2_LITE, "rope_theta", "rope_theta", 10000.0),
    ("deepseek_v2", DEEPSEEK_V2_LITE, "rms_norm_eps", "norm_eps", 1e-6),
    ("deepseek_v2", DEEPSEEK_V2_LITE, "norm_topk_prob", "norm_topk_prob", False),
]


@pytest.mark.parametrize("config, key, field, default", [a[1:] for a in ABSENT],
                         ids=[f"{a[0]}-{a[2]}" for a in ABSENT])
def test_an_absent_key_takes_the_transformers_class_default(tmp_path, config, key, field, default):
    assert getattr(load(tmp_path, without(config, key)), field) == default


# (family, config, changed keys, field, value read)
READ = [
    ("llama", LLAMA_3_70B | {"rope_theta": 123456.0}, "rope_theta", 123456.0),
    ("llama", LLAMA_3_70B | {"rms_norm_eps": 3e-6}, "norm_eps", 3e-6),
    ("mistral", MISTRAL_7B | {"rope_theta": 1e6}, "rope_theta", 1e6),
    ("mixtral", MIXTRAL_8X22B | {"rms_norm_eps": 1e-6}, "norm_eps", 1e-6),
    ("qwen2_moe", QWEN15_MOE | {"norm_topk_prob": True}, "norm_topk_prob", True),
    ("qwen3_moe", QWEN3_30B_A3B, "norm_topk_prob", True),  # Qwen3-30B-A3B: "norm_topk_prob": true
    ("olmoe", OLMOE | {"norm_topk_prob": True}, "norm_topk_prob", True),
    ("deepseek", DEEPSEEK_MOE_16B | {"norm_topk_prob": True}, "norm_topk_prob", True),
    ("deepseek_v2", DEEPSEEK_V2_LITE | {"norm_topk_prob": True}, "norm_topk_prob", True),
    ("dbrx", DBRX_BASE, "rope_theta", 500000.0),  # attn_config.rope_theta
]


@pytest.mark.parametrize("config, field, value", [r[1:] for r in READ], ids=[f"{r[0]}-{r[2]}" for r in READ])
def test_each_family_reads_its_key(tmp_path, config, field, value):
    assert getattr(load(tmp_path, config), field) == value


def test_deepseek_renormalises_only_with_more_than_one_expert_per_token(tmp_path):
    m = load(tmp_path, DEEPSEEK_MOE_16B | {"norm_topk_prob": True, "num_experts_per_tok": 1})
    assert not m.norm_topk_prob  # MoEGate: "if self.top_k > 1 and self.norm_topk_prob"


def test_a_dense_deepseek_ignores_norm_topk_prob(tmp_path):
    m = load(tmp_path, DEEPSEEK_MOE_16B | {"n_routed_experts": None, "norm_topk_prob": True})
    assert not m.is_moe and not m.norm_topk_prob


def test_mixtral_always_renormalises_and_has_no_key_for_it(tmp_path):
    assert load(tmp_path, MIXTRAL_8X22B).norm_topk_prob
    with pytest.raises(InputError, match=r": norm_topk_prob: unknown key for model_type 'mixtral'$"):
        load(tmp_path, MIXTRAL_8X22B | {"norm_topk_prob": False})


def test_dbrx_defaults_rope_theta_and_fixes_the_layernorm_epsilon(tmp_path):
    attn = without(DBRX_BASE["attn_config"], "rope_theta")
    m = load(tmp_path, DBRX_BASE | {"attn_config": attn})
    assert m.rope_theta == 10000.0  # DbrxAttentionConfig's default
    assert m.norm_eps == 1e-5  # nn.LayerNorm(d_model, bias=False): PyTorch's default, no key


@pytest.mark.parametrize("ffn_extra, renormalised", [
    ({}, True),  # absent: DbrxFFNConfig's default 1.0 (dbrx-base has no such key)
    ({"moe_normalize_expert_weights": 1}, True),
    ({"moe_normalize_expert_weights": 1.0}, True),
    ({"moe_normalize_expert_weights": None}, False),  # null: the router leaves the top-k weights as they are
])
def test_dbrx_renormalises_by_the_l1_norm_of_moe_normalize_expert_weights(tmp_path, ffn_extra, renormalised):
    m = load(tmp_path, DBRX_BASE | {"ffn_config": DBRX_BASE["ffn_config"] | ffn_extra})
    assert m.norm_topk_prob is renormalised


def test_the_transformers_v5_rope_parameters_give_rope_theta(tmp_path):
    v5 = without(LLAMA_3_70B, "rope_theta", "rope_scaling") | {
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
    assert load(tmp_path, v5) == PRESETS["llama-3-70b"]
    both = LLAMA_3_70B | {"rope_parameters": {"rope_theta": 500000.0}}  # agreeing copies
    assert load(tmp_path, both).rope_theta == 500000.0
    default = without(LLAMA_3_70B, "rope_theta") | {"rope_parameters": {"rope_type": "default"}}
    assert load(tmp_path, default).rope_theta == 10000.0


CASES = [
    ("rope_theta a string", LLAMA_3_70B | {"rope_theta": "500000"},
     'rope_theta: expected a finite number > 0, got "500000"'),
    ("rope_theta zero", OLMOE | {"rope_theta": 0}, "rope_theta: expected a finite number > 0, got 0"),
    ("rope_theta infinite", DEEPSEEK_MOE_16B | {"rope_theta": float("inf")},
     "Infinity is not a JSON number"),  # refused by the bounded JSON reader before any key is read
    ("rms_norm_eps negative", QWEN3_30B_A3B | {"rms_norm_eps": -1e-06},
     "rms_norm_eps: expected a finite number > 0, got -1e-06"),
    ("rms_norm_eps a boolean", MISTRAL_7B | {"rms_norm_eps": True},
     "rms_norm_eps: expected a finite number > 0, got true"),
    ("norm_topk_prob a string", QWEN15_MOE | {"norm_topk_prob": "yes"},
     'norm_topk_prob: expected true or false, got "yes"'),
    ("partial rotary", LLAMA_3_70B | {"partial_rotary_factor": 0.5},
     "partial_rotary_factor: 0.5 is not supported (RoPE over only part of each head)"),
    ("v5 scaling factor", LLAMA_3_70B | {"rope_parameters": {"rope_type": "default", "factor": 8.0}},
     "rope_parameters.factor: unknown key for model_type 'llama'"),
    ("v5 partial rotary", LLAMA_3_70B | {"rope_parameters": {"partial_rotary_factor": 0.25}},
     "rope_parameters.partial_rotary_factor: 0.25 is not supported (RoPE over only part of each head)"),
    ("two rope bases", LLAMA_3_70B | {"rope_parameters": {"rope_theta": 10000.0}},
     "rope_theta: 500000.0 contradicts rope_parameters.rope_theta (10000.0)"),
    ("dbrx rope_theta", DBRX_BASE | {"attn_config": DBRX_BASE["attn_config"] | {"rope_theta": -1}},
     "attn_config.rope_theta: expected a finite number > 0, got -1"),
    ("dbrx p-norm 2", DBRX_BASE | {"ffn_config": DBRX_BASE["ffn_config"] | {"moe_normalize_expert_weights": 2}},
     "ffn_config.moe_normalize_expert_weights: 2 is not supported (1: divide by the sum, or null: no division)"),
    ("dbrx p-norm true", DBRX_BASE | {"ffn_config": DBRX_BASE["ffn_config"] | {"moe_normalize_expert_weights": True}},
     "ffn_config.moe_normalize_expert_weights: true is not supported (1: divide by the sum, or null: no division)"),
    ("dbrx top-level rope_theta", DBRX_BASE | {"rope_theta": 500000},
     "rope_theta: unknown key for model_type 'dbrx'"),
]


@pytest.mark.parametrize("config, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_rope_or_norm_constant_is_one_line_naming_the_key(tmp_path, config, message):
    path = write(tmp_path, config)
    with pytest.raises(InputError) as err:
        load_hf_config(path)
    assert str(err.value) == f"{path}: {message}"
    assert "\n" not in str(err.value)
