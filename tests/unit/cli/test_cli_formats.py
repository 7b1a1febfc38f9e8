"""--dtype and --kv-dtype: shared by simulate, compare and compile; a bad value is one line."""

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


def test_compiling_fp8_deepseek_v3_names_the_flag_that_runs_it_in_bf16():
    result = invoke("compile", "deepseek-v3", "-d", "h100", "--tp", "8", "--ep", "8", "--batch", "2", "--ctx", "64",
                    "--layer", "3", "--part", "experts")
    assert result.exit_code == 1
    assert result.output == ("Error: deepseek-v3: the compiler cannot lower fp8 weights (--dtype bf16 runs them as "
                             "bf16) yet\n")


def test_an_fp8_kv_cache_is_refused_for_lowering_with_its_flag():
    result = invoke("compile", "deepseek-v2-lite", "-d", "h100", "--batch", "2", "--ctx", "64", "--layer", "0",
                    "--kv-dtype", "fp8")
    assert result.exit_code == 1
    assert result.output == "Error: deepseek-v2-lite: the compiler cannot lower an fp8 KV cache (--kv-dtype bf16) yet\n"
