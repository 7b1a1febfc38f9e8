"""config.json loading of what changes RoPE angles or the attention window but not cost: every
``rope_scaling`` kind of transformers is read with every parameter of its kind, a window no request
can exceed is no window, and what would change cost or is unknown stays one line naming the key."""

import dataclasses

import pytest

from opbsim.errors import InputError
from opbsim.workloads import PRESETS, RopeScaling, Stage, build_model, load_hf_config

from .test_hf_families import DEEPSEEK_V2_LITE, LLAMA_3_70B, MISTRAL_7B, MIXTRAL_8X22B, QWEN15_MOE, write

LLAMA_31_8B = {  # meta-llama/Llama-3.1-8B
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
    "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": False,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "transformers_version": "4.43.0.dev0", "use_cache": True, "vocab_size": 128256,
}


LLAMA_31_SCALING = RopeScaling(kind="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                               original_max_position_embeddings=8192)


def test_llama_3_1_8b_loads_with_its_llama3_rope_scaling_and_every_parameter(tmp_path):
    m = load_hf_config(write(tmp_path, LLAMA_31_8B))
    assert m.rope_scaling == LLAMA_31_SCALING
    assert m.rope_theta == 500000.0  # the base the scaling rescales
    assert (m.hidden_size, m.num_layers, m.num_kv_heads, m.dense_ffn, m.sliding_window) == (4096, 32, 8, 14336, 0)
    assert round(m.params_total / 1e9, 2) == 8.03  # Llama 3.1 8B: 8.03e9


SCALINGS = [  # (the rope_scaling object, the scaling read)
    ({"type": "linear", "factor": 2.0}, RopeScaling(kind="linear", factor=2.0)),
    ({"rope_type": "dynamic", "factor": 4.0, "original_max_position_embeddings": 8192},
     RopeScaling(kind="dynamic", factor=4.0, original_max_position_embeddings=8192)),
    (DEEPSEEK_V2_LITE["rope_scaling"], RopeScaling(kind="yarn", factor=40.0, original_max_position_embeddings=4096,
                                                   mscale=0.707, mscale_all_dim=0.707)),
    ({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},  # Qwen2.5's long-context note
     RopeScaling(kind="yarn", factor=4.0, original_max_position_embeddings=32768)),
    ({"type": "yarn", "factor": 4.0},  # no original length: max_position_embeddings (65536), as transformers v4
     RopeScaling(kind="yarn", factor=4.0, original_max_position_embeddings=65536)),
    ({"rope_type": "yarn", "factor": 32.0, "beta_fast": 0, "beta_slow": 2.0, "truncate": False,
      "attention_factor": 1.25, "original_max_position_embeddings": 4096},  # beta_fast 0: transformers' ``or 32``
     RopeScaling(kind="yarn", factor=32.0, beta_fast=32.0, beta_slow=2.0, truncate=False, attention_factor=1.25,
                 original_max_position_embeddings=4096)),
    ({"rope_type": "longrope", "short_factor": [1.0, 1.1], "long_factor": [1.5, 2.0],
      "original_max_position_embeddings": 4096}, RopeScaling(kind="longrope", original_max_position_embeddings=4096)),
    (LLAMA_31_8B["rope_scaling"] | {"type": "llama3"}, LLAMA_31_SCALING),  # both kind keys
    ({"rope_type": "default"}, None),
]


@pytest.mark.parametrize("scaling, recorded", SCALINGS, ids=[str(r) for _, r in SCALINGS])
def test_every_transformers_rope_scaling_kind_is_read_and_changes_no_op_cost(tmp_path, scaling, recorded):
    scaled = load_hf_config(write(tmp_path, MIXTRAL_8X22B | {"rope_scaling": scaling}))
    plain = load_hf_config(write(tmp_path, MIXTRAL_8X22B))
    assert scaled.rope_scaling == recorded
    assert dataclasses.replace(scaled, rope_scaling=None) == plain
    stage = Stage.decode(4, 512)
    estimates = [[op.estimates for op in build_model(m, stage).ops] for m in (scaled, plain)]
    assert estimates[0] == estimates[1]


def test_the_transformers_v5_rope_parameters_carry_the_scaling_too(tmp_path):
    v5 = {k: v for k, v in LLAMA_31_8B.items() if k not in ("rope_theta", "rope_scaling")} | {
        "rope_parameters": LLAMA_31_8B["rope_scaling"] | {"rope_theta": 500000.0}}
    assert load_hf_config(write(tmp_path, v5)) == load_hf_config(write(tmp_path, LLAMA_31_8B))


LLAMA3 = LLAMA_31_8B["rope_scaling"]
REFUSED = [
    ("multimodal mrope", LLAMA_31_8B | {"rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}},
     "rope_scaling.type: 'mrope' is not a supported RoPE scaling (linear, dynamic, yarn, longrope, llama3 or "
     "default)"),
    ("llama3 without its frequency band", LLAMA_31_8B | {
        "rope_scaling": {k: v for k, v in LLAMA3.items() if k != "low_freq_factor"}},
     "rope_scaling.low_freq_factor: missing (RoPE scaling 'llama3' needs factor, high_freq_factor, "
     "low_freq_factor, original_max_position_embeddings)"),
    ("a key of another kind", LLAMA_31_8B | {"rope_scaling": {"type": "linear", "factor": 2.0, "beta_fast": 32}},
     "rope_scaling.beta_fast: unknown key for RoPE scaling 'linear'"),
    ("a key of no kind", LLAMA_31_8B | {"rope_scaling": {"rope_type": "default", "factor": 8.0}},
     "rope_scaling.factor: unknown key for model_type 'llama'"),
    ("not an object", QWEN15_MOE | {"rope_scaling": 2}, "rope_scaling: expected an object, got 2"),
    ("two kinds", LLAMA_31_8B | {"rope_scaling": LLAMA3 | {"type": "yarn"}},
     "rope_scaling.type: 'yarn' contradicts rope_type 'llama3'"),
    ("factor zero", LLAMA_31_8B | {"rope_scaling": LLAMA3 | {"factor": 0}},
     "rope_scaling.factor: expected a finite number > 0, got 0"),
    ("longrope factors not a list", MIXTRAL_8X22B | {"rope_scaling": {"type": "longrope", "short_factor": 1.0,
                                                                      "long_factor": [2.0]}},
     "rope_scaling.short_factor: expected a list of numbers > 0, got 1.0"),
    ("v5 scaling contradicts rope_scaling", LLAMA_31_8B | {"rope_parameters": {"rope_type": "linear", "factor": 8.0}},
     "rope_scaling: llama3 x8 contradicts rope_parameters (linear x8)"),
    ("v5 default with a factor", LLAMA_3_70B | {"rope_parameters": {"rope_type": "default", "factor": 8.0}},
     "rope_parameters.factor: unknown key for model_type 'llama'"),
    ("partial rotary with scaling", LLAMA_31_8B | {"partial_rotary_factor": 0.5},
     "partial_rotary_factor: 0.5 is not supported (RoPE over only part of each head)"),
    ("a real window", QWEN15_MOE | {"use_sliding_window": True, "sliding_window": 4096},
     "use_sliding_window: true is not supported (per-layer sliding windows)"),
    ("yarn without an original length", {k: v for k, v in MIXTRAL_8X22B.items() if k != "max_position_embeddings"}
     | {"rope_scaling": {"type": "yarn", "factor": 4.0}},
     "rope_scaling.original_max_position_embeddings: missing (RoPE scaling 'yarn' needs it or "
     "max_position_embeddings)"),
    ("llama3 with its band reversed", LLAMA_31_8B | {"rope_scaling": LLAMA3 | {"low_freq_factor": 4.0,
                                                                              "high_freq_factor": 1.0}},
     "rope_scaling.high_freq_factor: 1 must be above low_freq_factor (4)"),
    ("a window past a bad context", MISTRAL_7B | {"max_position_embeddings": "32k"},
     'max_position_embeddings: expected a positive integer, got "32k"'),
]


@pytest.mark.parametrize("config, message", [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_what_rope_and_window_keys_cannot_describe_is_one_line_naming_the_key(tmp_path, config, message):
    path = write(tmp_path, config)
    with pytest.raises(InputError) as err:
        load_hf_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_mistral_7b_v0_1_keeps_its_4096_window_below_its_32768_positions(tmp_path):
    m = load_hf_config(write(tmp_path, MISTRAL_7B))
    assert (m.sliding_window, MISTRAL_7B["max_position_embeddings"]) == (4096, 32768)


@pytest.mark.parametrize("window, positions", [(32768, 32768), (131072, 32768), (None, 32768)])
def test_a_window_no_request_can_exceed_or_null_is_no_window(tmp_path, window, positions):
    config = MISTRAL_7B | {"sliding_window": window, "max_position_embeddings": positions}
    m = load_hf_config(write(tmp_path, config))
    assert m.sliding_window == 0
    assert m.kv_bytes(positions) == positions * m.kv_bytes_per_token  # nothing is ever dropped


def test_a_window_stays_when_the_file_gives_no_longest_context(tmp_path):
    config = {k: v for k, v in MISTRAL_7B.items() if k != "max_position_embeddings"} | {"sliding_window": 131072}
    assert load_hf_config(write(tmp_path, config)).sliding_window == 131072


def test_qwen_windows_switched_on_but_as_long_as_the_context_are_accepted(tmp_path):
    m = load_hf_config(write(tmp_path, QWEN15_MOE | {"use_sliding_window": True}))  # 32768 >= 8192 positions
    assert m.sliding_window == 0
    assert QWEN15_MOE["sliding_window"] >= QWEN15_MOE["max_position_embeddings"]


@pytest.mark.parametrize("make, message", [
    (lambda: RopeScaling(kind="ntk", factor=2.0),
     r"^rope_scaling kind must be one of linear, dynamic, yarn, longrope, llama3, got 'ntk'$"),
    (lambda: RopeScaling(kind="yarn", factor=0.0), r"^rope_scaling factor must be a finite number > 0, got 0.0$"),
    (lambda: RopeScaling(kind="yarn", factor=40.0),
     r"^rope_scaling 'yarn' needs original_max_position_embeddings$"),
    (lambda: RopeScaling(kind="llama3", factor=8.0),
     r"^rope_scaling 'llama3' needs low_freq_factor, high_freq_factor, original_max_position_embeddings$"),
    (lambda: RopeScaling(kind="linear", factor=2.0, truncate=1), r"^rope_scaling truncate must be True or False, "
                                                                 r"got 1$"),
    (lambda: dataclasses.replace(PRESETS["opt-66b"], rope_scaling=RopeScaling(kind="linear", factor=2.0)),
     r"^rope_scaling is linear x2 but the model has no RoPE \(rope_theta 0.0\)$"),
])
def test_a_model_config_checks_its_rope_scaling(make, message):
    with pytest.raises(InputError, match=message):
        make()
