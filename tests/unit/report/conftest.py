"""A tiny Mixtral-shaped model (config.json) and one comparison of it, shared by the report tests."""

from __future__ import annotations

import json

import pytest

from opbsim.report.compare import CompareSettings, compare

TINY_CONFIG = {
    "architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "hidden_size": 256, "intermediate_size": 512,
    "num_attention_heads": 8, "num_key_value_heads": 2, "num_hidden_layers": 2, "num_local_experts": 4,
    "num_experts_per_tok": 2, "vocab_size": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "hidden_act": "silu",
    "max_position_embeddings": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """Path of a 2-layer, 4-expert config.json that compiles in milliseconds."""
    path = tmp_path_factory.mktemp("tiny") / "config.json"
    path.write_text(json.dumps(TINY_CONFIG))
    return str(path)


def tiny_settings(model: str, **overrides) -> CompareSettings:
    base = dict(model=model, devices=("h100", "duplex", "sn40l"), policies=(("sn40l", "duplex"),), batch=4,
                batches=(2, 4), lin=32, lout=8)
    return CompareSettings(**{**base, **overrides})


@pytest.fixture(scope="session")
def tiny_comparison(tiny_model):
    """h100 and duplex run; sn40l is told to run the duplex policy, which needs an xPU and PIM: it cannot."""
    return compare(tiny_settings(tiny_model))


@pytest.fixture(scope="session")
def sn40l_comparison(tiny_model):
    """sn40l alone, on its own policy: its layers are fused dataflow kernels."""
    return compare(tiny_settings(tiny_model, devices=("sn40l",), policies=()))
