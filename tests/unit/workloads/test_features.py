"""Every preset either compiles (at a reduced size) or is refused in one line naming each feature the
compiler cannot lower yet; the presets are enumerated, so a new one is covered without a new test."""

import dataclasses
import re

import pytest

from opbsim.compiler import compile_graph
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.workloads import PRESETS, Stage, build_model
from opbsim.workloads.features import UNLOWERED, unlowered_features
from opbsim.workloads.models import MLA, RopeScaling
from opbsim.workloads.weight_format import with_formats


def reduced(m):
    """``m`` with 2 layers and small widths, keeping every feature unlowered_features looks at."""
    layers = 4 if m.full_attention_layers or m.nope_layers else 2
    keep = lambda t: tuple(i for i in t if i < layers)  # noqa: E731
    heads, kv = 4, 4 if m.num_kv_heads == m.num_heads else 2
    changes = dict(hidden_size=64, num_layers=layers, num_heads=heads, num_kv_heads=kv, head_dim=16,
                   vocab_size=128, full_attention_layers=keep(m.full_attention_layers), nope_layers=keep(m.nope_layers),
                   first_dense_layers=min(m.first_dense_layers, 1), moe_every=min(m.moe_every, 2))
    if m.mla is not None:
        changes.update(mla=MLA(q_lora_rank=m.mla.q_lora_rank and 32, kv_lora_rank=32, qk_nope_head_dim=8,
                               qk_rope_head_dim=8, v_head_dim=16), head_dim=16)
    if m.dense_ffn:
        changes["dense_ffn"] = 96
    if m.is_moe:
        n_group = m.router.n_group and min(m.router.n_group, 2)
        changes.update(num_experts=4, top_k=min(m.top_k, 2), expert_ffn=96,
                       router=dataclasses.replace(m.router, n_group=n_group, topk_group=min(m.router.topk_group, 1)))
        if m.shared_ffn:
            changes["shared_ffn"] = 32
    if m.learned_positions:
        changes["learned_positions"] = 64
    if m.weight_quant is not None:  # blocks that MLA's 8- and 16-wide head parts start on
        changes["weight_quant"] = dataclasses.replace(m.weight_quant, block=(8, 8))
    return dataclasses.replace(m, **changes)


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_compiles_or_is_refused_naming_the_features_the_compiler_lacks(name):
    model = reduced(PRESETS[name])
    assert unlowered_features(model) == unlowered_features(PRESETS[name])
    graph = build_model(model, Stage.decode(2, 24))
    missing = unlowered_features(model)
    if missing:
        with pytest.raises(InputError, match=f"^{re.escape(f'{model.name}: the compiler cannot lower ')}"
                                             f"{re.escape(', '.join(missing))} yet$"):
            compile_graph(graph, get_device("duplex"), "duplex")
    else:
        assert compile_graph(graph, get_device("duplex"), "duplex").program


def test_of_the_2026_presets_only_gpt_oss_is_refused_for_its_mxfp4_weights():
    assert unlowered_features(PRESETS["gpt-oss-20b"]) == ("mxfp4 weights (--dtype bf16 runs them as bf16)",)
    assert unlowered_features(PRESETS["deepseek-v3"]) == ()
    assert unlowered_features(with_formats(PRESETS["deepseek-v3"], kv="fp8")) == ()
    assert unlowered_features(PRESETS["llama4-maverick"]) == ()
    assert unlowered_features(PRESETS["mixtral-8x7b"]) == ()


# the RoPE scalings transformers computes from the sequence length (no preset has one): Phi-3.5-MoE's
# longrope object (its config.json: 48 short and 48 long factors over 4096 pretraining tokens) shortened
LONGROPE = RopeScaling(kind="longrope", original_max_position_embeddings=4096)
DYNAMIC = RopeScaling(kind="dynamic", factor=2.0)


def test_every_unlowered_feature_is_named_by_some_preset_in_some_storage_format_or_rope_scaling():
    models = [*PRESETS.values(), *(with_formats(m, kv="fp8") for m in PRESETS.values()),
              *(dataclasses.replace(PRESETS["mixtral-8x7b"], rope_scaling=s) for s in (LONGROPE, DYNAMIC))]
    named = {f for m in models for f in unlowered_features(m)}
    assert named == {name for name, _ in UNLOWERED}


@pytest.mark.parametrize("scaling,name", [(DYNAMIC, "dynamic"), (LONGROPE, "longrope")])
def test_a_rope_scaling_computed_from_the_sequence_length_is_refused_in_one_line_naming_it(scaling, name):
    model = dataclasses.replace(reduced(PRESETS["mixtral-8x7b"]), rope_scaling=scaling)
    with pytest.raises(InputError, match=f"^mixtral-8x7b: the compiler cannot lower {name} RoPE scaling yet$"):
        compile_graph(build_model(model, Stage.decode(2, 24)), get_device("duplex"), "duplex")


@pytest.mark.parametrize("kind", ["linear", "llama3", "yarn"])
def test_the_rope_scalings_of_one_table_per_model_are_lowered(kind):
    scaling = {"linear": RopeScaling(kind="linear", factor=4.0),
               "llama3": RopeScaling(kind="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                     original_max_position_embeddings=8192),
               "yarn": RopeScaling(kind="yarn", factor=4.0, original_max_position_embeddings=32768)}[kind]
    model = dataclasses.replace(reduced(PRESETS["mixtral-8x7b"]), rope_scaling=scaling)
    assert unlowered_features(model) == ()
    assert compile_graph(build_model(model, Stage.decode(2, 24)), get_device("duplex"), "duplex").program
