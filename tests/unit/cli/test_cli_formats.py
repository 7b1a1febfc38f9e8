"""--dtype and --kv-dtype: shared by simulate, compare and compile; a bad value is one line."""

import re

import pytest
from click.testing import CliRunner

from opbsim.cli import cli


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("command", [["simulate", "deepseek-v3", "-d", "h100", "--batch", "4"],
                                     ["compare", "deepseek-v3"], ["compile", "deepseek-v3", "-d", "h100"]])
@pytest.mark.parametrize(("flag", "value"), [("--dtype", "fp16"), ("--kv-dtype", "int4")])
def test_an_unknown_storage_format_is_one_line_on_every_command(command, flag, value):
    result = invoke(*command, flag, value)
    assert result.exit_code == 1
    assert result.output == f"Error: {flag} '{value}': expected one of bf16, fp8\n"


def test_compiling_fp8_deepseek_v3_writes_quantized_activations_and_fp8_gemms(tmp_path):
    out = tmp_path / "experts.s"
    result = invoke("compile", "deepseek-v3", "-d", "h100", "--tp", "8", "--ep", "8", "--batch", "2", "--ctx", "64",
                    "--layer", "3", "--part", "experts", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "act_quant.xpu" in text and "gemm_fp8.xpu" in text and not re.search(r"^\s+gemm\.", text, re.M)


def test_an_fp8_kv_cache_compiles_with_quantized_stores_and_fp8_cache_reads(tmp_path):
    out = tmp_path / "layer0.s"
    result = invoke("compile", "deepseek-v2-lite", "-d", "h100", "--batch", "2", "--ctx", "64", "--layer", "0",
                    "--kv-dtype", "fp8", "-o", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "    quant.xpu       kv_codes, L0.kv_a, L0.kv_cache.scale, group=576" in text
    assert "gemm_fp8.xpu    scores" in text


def test_compiling_mxfp4_gpt_oss_names_the_flag_that_runs_it_in_bf16():
    result = invoke("compile", "gpt-oss-20b", "-d", "h100", "--batch", "2", "--ctx", "64", "--layer", "0")
    assert result.exit_code == 1
    assert result.output == ("Error: gpt-oss-20b: the compiler cannot lower mxfp4 weights (--dtype bf16 runs them as "
                             "bf16) yet\n")
