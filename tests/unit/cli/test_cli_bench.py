"""`opbsim bench exact`: throughputs and the bit check in one run."""

import json

from click.testing import CliRunner

from opbsim.cli import cli


def test_bench_exact_reports_each_throughput_and_that_the_exact_gemm_is_bit_exact():
    result = CliRunner().invoke(cli, ["bench", "exact", "--m", "7", "--k", "33", "--n", "65", "--reps", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["bit_exact"] is True
    assert {"exact_gflops", "sgemm_gflops", "numpy_definition_gflops", "ratio_vs_sgemm"} <= set(out)
    assert abs(out["ratio_vs_sgemm"] - out["exact_gflops"] / out["sgemm_gflops"]) < 0.01 * out["ratio_vs_sgemm"] + 1e-3


def test_bench_exact_rejects_an_empty_shape_as_a_usage_error():
    assert CliRunner().invoke(cli, ["bench", "exact", "--m", "0"]).exit_code == 2


def test_bench_exact_takes_the_expert_dimensions_past_8192():
    # K = 14336 as in the Mixtral expert down-projection; a thin shape keeps the run short
    result = CliRunner().invoke(cli, ["bench", "exact", "--m", "2", "--k", "14336", "--n", "16", "--reps", "1",
                                      "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["k"] == 14336 and out["bit_exact"] is True and out["threads"] >= 1


def test_bench_exact_refuses_a_run_too_long_or_too_large_with_one_line():
    for args, why in ((["--m", "16384", "--k", "16384", "--n", "16384"], "FLOP"),
                      (["--m", "4096", "--k", "4096", "--n", "4096", "--reps", "100"], "--reps"),
                      (["--m", "1", "--k", "65536", "--n", "65536"], "GiB")):
        result = CliRunner().invoke(cli, ["bench", "exact", *args])
        assert result.exit_code == 1, result.output
        assert why in result.output and result.output.count("\n") == 1 and "Traceback" not in result.output
