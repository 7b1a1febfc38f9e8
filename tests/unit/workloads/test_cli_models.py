"""`opbsim models` and `opbsim models show`: tables, JSON, and one-line errors with exit status 1."""

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.workloads import PRESETS

FIXTURES = Path(__file__).parents[2] / "fixtures"
REQUIRED_KEYS = {"hidden_size", "num_layers", "num_heads", "num_kv_heads", "head_dim", "num_experts", "top_k",
                 "expert_ffn", "shared_ffn", "dense_ffn", "first_dense_layers", "vocab_size", "params_total",
                 "params_active", "rope_theta", "norm_eps", "norm_topk_prob"}


@pytest.fixture
def runner():
    return CliRunner()


def show_json(runner, *args) -> dict:
    result = runner.invoke(cli, ["models", "show", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_models_lists_every_preset_with_its_parameter_counts_runs_and_source(runner):
    result = runner.invoke(cli, ["models"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 2 + len(PRESETS) + 2  # header, rule, one row per preset, blank, what "runs" means
    assert lines[0].split()[-2:] == ["runs", "source"]
    mixtral = next(line for line in lines if line.startswith("mixtral-8x7b "))
    assert "46.7B" in mixtral and "12.9B" in mixtral and "GQA" in mixtral and "8 top-2" in mixtral
    assert " yes " in mixtral  # the demo's model
    assert "HF mistralai/Mixtral-8x7B-v0.1 config.json" in mixtral
    assert lines[-1].startswith("runs: whether `opbsim simulate` compiles the model for h100, duplex, sn40l")


def simulate(runner, model: str):
    return runner.invoke(cli, ["simulate", model, "-d", "h100", "--batch", "2", "--lin", "8", "--lout", "2",
                               "--requests", "2"])


@pytest.mark.parametrize("name", ["llama-2-7b", "olmoe-1b-7b-0924", "qwen1.5-moe-a2.7b", "deepseek-v2-lite"])
def test_the_runs_column_and_models_show_say_what_simulate_does(runner, name):
    s = show_json(runner, name, "--batch", "1", "--ctx", "8")
    row = next(line for line in runner.invoke(cli, ["models"]).output.splitlines() if line.startswith(f"{name} "))
    sim = simulate(runner, name)
    assert s["runs"] == (sim.exit_code == 0), sim.output
    assert f" {'yes' if s['runs'] else 'no'} " in row
    if not s["runs"]:  # simulate stops at the first part the compiler cannot lower
        assert sim.output.strip() == f"Error: {s['cannot_run']['h100'][0]}"
        assert set(s["cannot_run"]) == set(s["runs_checked_on"])


def test_show_gives_the_compilers_message_when_a_model_cannot_run(runner):
    text = runner.invoke(cli, ["models", "show", "gpt-oss-20b", "--batch", "1", "--ctx", "8"]).output
    s = show_json(runner, "gpt-oss-20b", "--batch", "1", "--ctx", "8")
    assert re.search(r"^runs in simulate +no: " + re.escape(s["cannot_run"]["h100"][0]) + "$", text, re.M)
    text = runner.invoke(cli, ["models", "show", "mixtral-8x7b", "--batch", "1", "--ctx", "8"]).output
    assert re.search(r"^runs in simulate +yes \(compiles for h100, duplex, sn40l\)$", text, re.M)


def test_a_config_json_with_a_real_sliding_window_loads_and_runs(runner, tmp_path):
    from .test_hf_families import MISTRAL_7B, write

    path = str(write(tmp_path, MISTRAL_7B))  # mistralai/Mistral-7B-v0.1: 4096-token window, 32768 positions
    s = show_json(runner, path, "--batch", "1", "--ctx", "8")
    assert s["sliding_window"] == 4096 and s["runs"] and not s["cannot_run"]
    assert simulate(runner, path).exit_code == 0


def test_show_json_is_one_object_with_the_documented_keys(runner):
    s = show_json(runner, "mixtral-8x7b")
    assert REQUIRED_KEYS <= set(s)
    shape = (s["hidden_size"], s["num_layers"], s["num_heads"], s["num_kv_heads"], s["head_dim"])
    assert shape == (4096, 32, 32, 8, 128)
    assert (s["num_experts"], s["top_k"], s["expert_ffn"], s["shared_ffn"], s["dense_ffn"]) == (8, 2, 14336, 0, 0)
    assert s["params_total"] == 46_702_792_704 and s["params_active"] == 12_879_925_248
    assert s["kv_bytes_per_token"] == 2 * 8 * 128 * 2 * 32  # K and V, kv heads, head_dim, bf16, layers


@pytest.mark.parametrize("name, constants", [
    ("mixtral-8x7b", (1e6, 1e-5, True)),
    ("qwen1.5-moe-a2.7b", (1e6, 1e-6, False)),
    ("opt-66b", (0.0, 1e-5, False)),
])
def test_show_json_gives_rope_theta_norm_eps_and_norm_topk_prob(runner, name, constants):
    s = show_json(runner, name, "--batch", "1", "--ctx", "8")
    assert (s["rope_theta"], s["norm_eps"], s["norm_topk_prob"]) == constants


def test_show_prints_the_rope_base_and_norm_epsilon(runner):
    result = runner.invoke(cli, ["models", "show", "mixtral-8x7b", "--batch", "1", "--ctx", "8"])
    assert re.search(r"^RoPE base +1000000$", result.output, re.M)
    assert re.search(r"^FFN form / norm +swiglu / rmsnorm \(eps 1e-05\)$", result.output, re.M)
    assert "top-2 (renormalised)" in result.output
    opt = runner.invoke(cli, ["models", "show", "opt-66b", "--batch", "1", "--ctx", "8"]).output
    assert re.search(r"^RoPE base +- \(no RoPE\)$", opt, re.M)


def test_show_gives_per_op_op_per_byte_at_the_batch_and_context(runner):
    s = show_json(runner, "mixtral-8x7b", "--batch", "64", "--ctx", "4096")
    ops = {row["op"]: row for row in s["layers"][0]["ops"]}
    assert ops["attn_decode"]["op_per_B"] == pytest.approx(4, rel=0.012)  # GQA group 32 / 8
    assert ops["expert"]["count"] == 8 and ops["expert"]["tokens"] == [64 * 2 // 8] * 8  # B k / E = 16
    assert ops["expert"]["op_per_B"] == pytest.approx(16, rel=0.01)
    assert s["stage"]["kv_cache_bytes"] == 64 * 4096 * s["kv_bytes_per_token"]


def test_show_lists_a_dense_and_a_moe_layer_when_the_model_has_both(runner):
    s = show_json(runner, "deepseek-moe-16b", "--batch", "4", "--ctx", "64")
    assert [(layer["layer"], layer["moe"]) for layer in s["layers"]] == [(0, False), (1, True)]


def test_show_reads_a_config_json(runner):
    s = show_json(runner, str(FIXTURES / "olmoe-1b-7b-0924.config.json"))
    assert s["name"] == "olmoe-1b-7b-0924"
    assert (s["num_experts"], s["top_k"], s["expert_ffn"]) == (64, 8, 1024)
    assert s["params_total"] == PRESETS["olmoe-1b-7b-0924"].params_total


def test_show_prints_tables_for_reading(runner):
    result = runner.invoke(cli, ["models", "show", "llama-3-70b", "--batch", "8", "--ctx", "1024", "--tp", "8"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^params total +70\.55e9 \(70,553,706,496\)$", result.output, re.M)
    assert "layer 0 (dense), batch 8 decode tokens at context 1024, tp 8:" in result.output
    assert "attn_all_reduce" in result.output
    assert "whole model:" in result.output


def test_show_with_a_prefill_chunk_adds_its_attention_op(runner):
    s = show_json(runner, "llama-2-7b", "--batch", "2", "--ctx", "16", "--prefill", "128")
    assert "attn_prefill.0" in {row["op"] for row in s["layers"][0]["ops"]}


@pytest.mark.parametrize("args, message", [
    (["nonesuch"], "Error: unknown model 'nonesuch': not a preset (see `opbsim models`) and not a file"),
    (["mixtral-8x7b", "--tp", "3"], "Error: tp (3) must divide num_heads (32)"),
])
def test_bad_input_is_one_line_and_exit_status_1(runner, args, message):
    result = runner.invoke(cli, ["models", "show", *args])
    assert result.exit_code == 1
    assert result.output.strip() == message


def test_a_bad_config_json_names_the_file_and_key_with_exit_status_1(runner, tmp_path):
    path = tmp_path / "config.json"
    config = json.loads((FIXTURES / "mixtral-8x7b-v0.1.config.json").read_text())
    path.write_text(json.dumps({k: v for k, v in config.items() if k != "num_local_experts"}))
    result = runner.invoke(cli, ["models", "show", str(path)])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {path}: num_local_experts: missing"


def test_a_zero_batch_is_a_usage_error(runner):
    assert runner.invoke(cli, ["models", "show", "mixtral-8x7b", "--batch", "0"]).exit_code == 2


def test_a_model_whose_check_would_compile_too_many_experts_is_shown_as_not_checked(runner, tmp_path):
    config = json.loads((FIXTURES / "mixtral-8x7b-v0.1.config.json").read_text()) | {
        "num_local_experts": 512, "num_experts_per_tok": 129, "intermediate_size": 64, "hidden_size": 256,
        "num_attention_heads": 8, "num_key_value_heads": 8}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    s = show_json(runner, str(path), "--batch", "1", "--ctx", "8")
    assert (s["runs"], s["cannot_run"]) == (None, {})
    note = "not checked: 2 tokens at top-129 reach 258 experts, more than the 256 the check compiles"  # 2 x 129
    assert s["runs_note"] == note
    text = runner.invoke(cli, ["models", "show", str(path), "--batch", "1", "--ctx", "8"]).output
    assert re.search(r"^runs in simulate +" + re.escape(note) + "$", text, re.M)
