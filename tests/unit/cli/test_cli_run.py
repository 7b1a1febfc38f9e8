"""`opbsim run`: a layer of a model from a config.json, compiled, executed and checked exactly."""

import json

from click.testing import CliRunner

from opbsim.cli import cli

FIXTURE = "tests/fixtures/mixtral-8x7b-v0.1.config.json"


def small_mixtral(tmp_path, layers: int = 3):
    """The real Mixtral config.json with its sizes cut down: same family, same code paths."""
    cfg = json.loads(open(FIXTURE).read())
    cfg.update(hidden_size=64, intermediate_size=96, num_attention_heads=4, num_key_value_heads=2,
               num_hidden_layers=layers, num_local_experts=4, vocab_size=128)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_run_checks_every_output_of_a_moe_layer_bit_for_bit_and_reports_float64_errors(tmp_path):
    result = CliRunner().invoke(cli, ["run", small_mixtral(tmp_path), "--layer", "2", "--batch", "5", "--ctx", "9",
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["bit_exact"] is True and out["mismatches"] == []
    assert out["outputs_checked"] == ["L2.h", "L2.ffn_out", "L2.k_cache", "L2.v_cache"]
    assert 0 < out["attention_rel_error_max"] < 0.05 and 0 < out["ffn_rel_error_max"] < 0.05  # bf16 roundings


def test_run_refuses_a_layer_outside_the_model(tmp_path):
    result = CliRunner().invoke(cli, ["run", small_mixtral(tmp_path), "--layer", "3"])
    assert result.exit_code == 1
    assert result.output == f"Error: layer 3 is outside 0..2 ({tmp_path.name})\n"  # a model is named by its folder


def test_an_expert_that_receives_no_token_at_a_small_batch_is_checked_like_the_others(tmp_path):
    # batch 1, top-2 of 4 experts: the balanced counts give two experts no token, while the reference's own
    # routing may pick either of them; every expert's weights exist whatever the routing
    for batch in ("1", "2"):
        result = CliRunner().invoke(cli, ["run", small_mixtral(tmp_path), "--layer", "1", "--batch", batch,
                                          "--ctx", "4", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)["bit_exact"] is True


def small_llama(tmp_path):
    """A dense Llama-shaped config.json: no layer has experts."""
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 96,
           "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2, "vocab_size": 128,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu", "max_position_embeddings": 256,
           "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    path = tmp_path / "llama" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    return str(path)


def test_run_labels_each_golden_error_with_its_norm(tmp_path):
    result = CliRunner().invoke(cli, ["run", small_mixtral(tmp_path), "--layer", "1", "--batch", "3", "--ctx", "6"])
    assert result.exit_code == 0, result.output
    labels = [line.split("  ")[0] for line in result.output.splitlines() if " error " in line]
    assert labels == ["attention error max|y-g|/max|g|", "attention error mean|y-g|/mean|g|",
                      "ffn error max|y-g|/max|g|", "ffn error mean|y-g|/mean|g|"]
    assert "nan" not in result.output


def test_a_dense_layer_has_no_golden_ffn_error_and_says_why_instead_of_nan(tmp_path):
    model = small_llama(tmp_path)
    text = CliRunner().invoke(cli, ["run", model, "--batch", "2", "--ctx", "5"])
    assert text.exit_code == 0, text.output
    assert "nan" not in text.output
    line = next(line for line in text.output.splitlines() if line.startswith("ffn error"))
    assert line.split("  ")[-1].strip() == "n/a (layer 0 is dense: the golden FFN check covers MoE layers only)"
    out = json.loads(CliRunner().invoke(cli, ["run", model, "--batch", "2", "--ctx", "5", "--json"]).output)
    assert out["ffn_rel_error_max"] is None and out["ffn_rel_error_mean"] is None
    assert out["ffn_unchecked"] == "layer 0 is dense: the golden FFN check covers MoE layers only"
    assert out["attention_unchecked"] == "" and 0 < out["attention_rel_error_max"] < 0.05


def test_run_checks_an_mla_layer_with_its_yarn_rope_scaling_applied_and_no_note(tmp_path):
    result = CliRunner().invoke(cli, ["run", "deepseek-v2-lite", "--layer", "1", "--batch", "2", "--ctx", "4",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "bit_exact" in result.stdout and "True" in result.stdout and "L1.kv_cache" in result.stdout
    assert "rope_scaling" not in result.stderr

def test_the_golden_checks_a_seeded_sample_of_rows_by_default_and_every_row_with_golden_all(tmp_path):
    path = small_mixtral(tmp_path)
    args = ["run", path, "--layer", "1", "--batch", "12", "--ctx", "9", "--json", "--seed", "3"]
    sampled = json.loads(CliRunner().invoke(cli, args).output)
    again = json.loads(CliRunner().invoke(cli, args).output)
    every = json.loads(CliRunner().invoke(cli, [*args, "--golden", "all"]).output)
    assert sampled["golden_rows"].startswith("8 of 12 (seed 3): ") and sampled["golden_rows"] == again["golden_rows"]
    assert every["golden_rows"] == "all 12"
    assert sampled["bit_exact"] is True and every["bit_exact"] is True
    assert 0 < sampled["ffn_rel_error_mean"] and 0 < every["ffn_rel_error_mean"]


def test_a_golden_sample_that_is_not_a_count_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["run", small_mixtral(tmp_path), "--golden", "some"])
    assert result.exit_code == 1
    assert result.output == "Error: --golden 'some': expected a positive number of rows or 'all'\n"
