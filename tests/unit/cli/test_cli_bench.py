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
