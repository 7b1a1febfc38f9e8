"""Absurd config values and hostile JSON are one line each, refused before any work."""

import json

import pytest

from opbsim.errors import InputError
from opbsim.workloads import load_hf_config

from .test_hf_families import MIXTRAL_8X22B, write

CASES = [
    ("5,000-digit integer", '{"vocab_size": ' + "9" * 5000 + "}", "an integer of 5000 digits (at most 30)"),
    ("100,000-deep nesting", "[" * 100_000 + "]" * 100_000, "JSON nested more than 64 deep"),
    ("an integer past the float range", json.dumps(MIXTRAL_8X22B | {"rope_theta": 10**400}),
     "an integer of 401 digits (at most 30)"),
    ("a float past the float range", json.dumps(MIXTRAL_8X22B)[:-1] + ', "rope_scaling_factor": 1e400}',
     "1e400 is too large for a number"),
    ("NaN", json.dumps(MIXTRAL_8X22B)[:-1] + ', "rms_norm_eps": NaN}', "NaN is not a JSON number"),
    ("2^63 experts", json.dumps(MIXTRAL_8X22B | {"num_local_experts": 2**63}),
     "num_local_experts: num_experts is 9223372036854775808, more than the 65536 opbsim takes"),
    ("a billion layers", json.dumps(MIXTRAL_8X22B | {"num_hidden_layers": 10**9}),
     "num_hidden_layers: num_layers is 1000000000, more than the 10000 opbsim takes"),
    ("odd head_dim under RoPE", json.dumps(MIXTRAL_8X22B | {"head_dim": 127}),
     "head_dim: head_dim must be even for RoPE (it rotates pairs), got 127"),
    ("epsilon of 100", json.dumps(MIXTRAL_8X22B | {"rms_norm_eps": 100}),
     "rms_norm_eps: norm_eps must be at most 0.1 (it guards the norm's division; a larger one rescales the "
     "layer), got 100.0"),
    ("a 10^12 vocabulary", json.dumps(MIXTRAL_8X22B | {"vocab_size": 10**12}),
     "vocab_size: vocab_size is 1000000000000, more than the 16777216 opbsim takes"),
]


@pytest.mark.parametrize("text, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_hostile_or_absurd_config_is_one_line_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_hf_config(path)
    assert str(err.value) == f"{path}: {message}"


def test_a_billion_layer_config_is_refused_at_once_by_the_cli(tmp_path):
    from click.testing import CliRunner

    from opbsim.cli import cli

    path = write(tmp_path, MIXTRAL_8X22B | {"num_hidden_layers": 10**9})
    for command in (["models", "show", str(path)], ["simulate", str(path), "-d", "h100", "--batch", "1", "--lin",
                                                     "1", "--lout", "1"], ["compile", str(path), "-d", "h100"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert "more than the 10000 opbsim takes" in result.output


def test_a_model_no_system_could_hold_is_refused_with_its_sizes(tmp_path):
    from opbsim.workloads import load_model

    path = write(tmp_path, MIXTRAL_8X22B | {"hidden_size": 48 * 2**14, "intermediate_size": 2**20,
                                            "num_hidden_layers": 10_000})
    with pytest.raises(InputError) as err:
        load_model(str(path))
    assert str(err.value) == (f"{tmp_path.name} fits no system opbsim models: 386,250.2 TiB of weights and "
                              "5,000.0 MiB of KV cache per token, over the 5,826 TiB of 4096 x sn40l")  # 4096 x 64e9 B


def test_the_deepest_model_allowed_is_shown_building_one_layer_per_kind(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from opbsim.cli import cli
    from opbsim.workloads import graph

    built = []
    layer = graph._layer
    monkeypatch.setattr(graph, "_layer", lambda model, shard, stage, i, *a: built.append(i) or layer(
        model, shard, stage, i, *a))
    path = write(tmp_path, MIXTRAL_8X22B | {"num_hidden_layers": 10_000})
    result = CliRunner().invoke(cli, ["models", "show", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["num_moe_layers"] == 10_000
    assert sorted(set(built)) == [0, 1]  # the first layer and one later MoE layer, not all 10,000


def test_more_requests_than_one_run_serves_is_one_line():
    from opbsim.workloads import FixedLengths, closed_loop

    with pytest.raises(InputError, match="num_requests is 87603678, more than the 1,000,000 requests opbsim serves"):
        closed_loop(2, FixedLengths(8, 2), num_requests=87_603_678, seed=0)
