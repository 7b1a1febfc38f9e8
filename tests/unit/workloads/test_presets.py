"""Presets: every model preset, with its source, matching its published sizes."""

from pathlib import Path

import pytest

from opbsim.errors import InputError
from opbsim.workloads import PRESETS, get_preset
from opbsim.workloads.hf_families import FAMILIES

# (preset, hidden, layers, heads, kv heads, experts, top-k, vocab): each from the source its preset cites
MODELS_MD = [
    ("mixtral-8x7b", 4096, 32, 32, 8, 8, 2, 32000),
    ("mixtral-8x22b", 6144, 56, 48, 8, 8, 2, 32000),
    ("grok-1", 6144, 64, 48, 8, 8, 2, 131072),
    ("glam-143b", 4096, 32, 32, 32, 64, 2, 256000),
    ("deepseek-moe-16b", 2048, 28, 16, 16, 64, 6, 102400),
    ("qwen1.5-moe-a2.7b", 2048, 24, 16, 16, 60, 4, 151936),
    ("olmoe-1b-7b-0924", 2048, 16, 16, 16, 64, 8, 50304),
    ("opt-66b", 9216, 64, 72, 72, 0, 0, 50272),
    ("llama-3-70b", 8192, 80, 64, 8, 0, 0, 128256),
    ("llama-2-7b", 4096, 32, 32, 32, 0, 0, 32000),
]

# Published parameter counts (billions; total, active), to the precision they are published with.
PUBLISHED = {
    "mixtral-8x7b": (46.7, 12.9),  # Mistral AI announcement
    "mixtral-8x22b": (141, 39),  # Mistral AI announcement
    "grok-1": (314, None),  # xAI release; ours also counts the tied 0.8e9 embedding
    "glam-143b": (143, None),  # Duplex Table I
    "deepseek-moe-16b": (16.4, 2.8),  # DeepSeekMoE paper
    "qwen1.5-moe-a2.7b": (14.3, 2.7),  # Qwen1.5-MoE model card
    "olmoe-1b-7b-0924": (6.9, 1.3),  # OLMoE paper
    "opt-66b": (66, None),  # Duplex Table I
    "llama-3-70b": (70.6, None),  # HF model card
    "llama-2-7b": (6.7, None),  # HF model card
    "deepseek-v2": (236, 21),  # DeepSeek-V2 paper
}


# (rope_theta, norm_eps, norm_topk_prob) of every preset and where each comes from.
CONSTANTS = {
    "deepseek-v3": (10000.0, 1e-6, True),  # config.json (tests/fixtures)
    "qwen3-30b-a3b": (1e6, 1e-6, True),  # config.json (tests/fixtures)
    "qwen3-235b-a22b": (1e6, 1e-6, True),  # config.json
    "llama4-scout": (500000.0, 1e-5, False),  # text_config; Llama4Router weights by sigmoid, no renormalising
    "llama4-maverick": (500000.0, 1e-5, False),  # text_config; as Scout
    "gpt-oss-120b": (150000.0, 1e-5, False),  # config.json; the softmax over the top-4 needs no renormalising
    "gpt-oss-20b": (150000.0, 1e-5, False),  # config.json; as 120b
    "mixtral-8x7b": (1e6, 1e-5, True),  # config.json; MixtralSparseMoeBlock divides the top-2 by their sum
    "mixtral-8x22b": (1e6, 1e-5, True),  # config.json; as 8x7B
    "grok-1": (10000.0, 1e-5, False),  # model.py: RotaryEmbedding base 1e4, RMSNorm eps, top-2 of a softmax as is
    "glam-143b": (0.0, 1e-6, True),  # relative position bias (no RoPE); eps and GShard renormalisation assumed
    "deepseek-moe-16b": (10000.0, 1e-6, False),  # config.json (norm_topk_prob false)
    "qwen1.5-moe-a2.7b": (1e6, 1e-6, False),  # config.json (norm_topk_prob false)
    "olmoe-1b-7b-0924": (10000.0, 1e-5, False),  # config.json (norm_topk_prob false)
    "opt-66b": (0.0, 1e-5, False),  # learned positions; nn.LayerNorm's default epsilon
    "llama-3-70b": (500000.0, 1e-5, False),  # config.json
    "llama-2-7b": (10000.0, 1e-5, False),  # config.json has no rope_theta: LlamaConfig's default
    "deepseek-v2-lite": (10000.0, 1e-6, False),  # config.json (its YaRN rope_scaling is not described)
    "deepseek-v2": (10000.0, 1e-6, False),  # config.json (as V2-Lite)
}


def test_every_preset_states_its_rope_base_norm_epsilon_and_top_k_renormalisation():
    assert set(CONSTANTS) == set(PRESETS)
    for name, m in PRESETS.items():
        assert (m.rope_theta, m.norm_eps, m.norm_topk_prob) == CONSTANTS[name], name


@pytest.mark.parametrize("name, hidden, layers, heads, kv_heads, experts, top_k, vocab", MODELS_MD)
def test_every_model_of_models_md_is_a_preset_with_its_table_row(name, hidden, layers, heads, kv_heads, experts,
                                                                    top_k, vocab):
    m = PRESETS[name]
    assert (m.hidden_size, m.num_layers, m.num_heads, m.num_kv_heads, m.num_experts, m.top_k, m.vocab_size) == (
        hidden, layers, heads, kv_heads, experts, top_k, vocab)
    assert m.head_dim == 128


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_counts_match_the_published_figures(name):
    total, active = PUBLISHED[name]
    m = PRESETS[name]
    digits = 1 if isinstance(total, float) else 0
    if name == "grok-1":
        assert abs(m.params_total / 1e9 - total) < 2.0  # 315.7: 314 + the 0.8e9 embedding + norms
    else:
        assert round(m.params_total / 1e9, digits) == total
    if active is not None:
        assert round(m.params_active / 1e9, 1 if isinstance(active, float) else 0) == active


def test_ffn_widths_match_models_md():
    assert PRESETS["deepseek-moe-16b"].dense_ffn == 10944
    assert (PRESETS["deepseek-moe-16b"].num_shared_experts, PRESETS["deepseek-moe-16b"].shared_ffn) == (2, 1408)
    assert PRESETS["qwen1.5-moe-a2.7b"].shared_ffn == 5632 and PRESETS["qwen1.5-moe-a2.7b"].shared_expert_gate
    assert PRESETS["grok-1"].expert_ffn == 32768
    assert PRESETS["opt-66b"].dense_ffn == 36864


def test_every_preset_names_its_source():
    assert all(m.source for m in PRESETS.values())
    assert all(name == m.name for name, m in PRESETS.items())


def test_preset_lookup_ignores_case():
    assert get_preset("Mixtral-8x7B") is PRESETS["mixtral-8x7b"]


def test_an_unknown_preset_lists_the_known_ones():
    with pytest.raises(InputError) as err:
        get_preset("gpt-5")
    assert str(err.value).startswith("unknown model 'gpt-5' (presets: mixtral-8x7b, mixtral-8x22b, grok-1,")


def test_the_preset_table_is_read_only():
    with pytest.raises(TypeError):
        PRESETS["mine"] = PRESETS["llama-2-7b"]


def test_docs_models_md_lists_every_preset_and_family():
    text = (Path(__file__).parents[3] / "docs" / "models.md").read_text()
    for name, m in PRESETS.items():
        assert f"| {name} | {m.params_total / 1e9:.1f}e9 | {m.params_active / 1e9:.1f}e9 |" in text
    for family in FAMILIES:
        assert family in text
