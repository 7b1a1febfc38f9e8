"""`opbsim simulate --replicas` / `--trace-file` and `opbsim capacity`: output, one-line errors."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from opbsim.cli import cli

EXAMPLE = str(Path(__file__).parents[3] / "docs" / "examples" / "trace.csv")
BASE = ["mixtral-8x7b", "-d", "duplex", "--tp", "4", "--batch", "4"]


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_simulate_a_trace_file_on_two_replicas_reports_cluster_and_per_replica_metrics():
    result = invoke("simulate", *BASE, "--trace-file", EXAMPLE, "--replicas", "2", "--router", "least-outstanding",
                    "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["requests"] == 12 and out["replicas"] == 2 and out["router"] == "least-outstanding"
    assert {"ttft_p99_ms", "tpot_p99_ms", "tbt_p99_ms", "tokens_per_s_per_replica"} <= set(out)
    assert sum(r["requests"] for r in out["per_replica"]) == 12


def test_simulate_poisson_and_gamma_arrivals_on_replicas():
    for arrivals in ("poisson", "gamma:2.5"):
        result = invoke("simulate", *BASE, "--lin", "64", "--lout", "4", "--qps", "50", "--requests", "20",
                        "--replicas", "2", "--arrivals", arrivals)
        assert result.exit_code == 0, result.output
        assert "2 replicas of" in result.output and "replica  requests" in result.output


def test_capacity_brackets_the_goodput_and_prints_it_per_replica():
    result = invoke("capacity", *BASE, "--lin", "64", "--lout", "4", "--requests", "60", "--slo-ttft-ms", "50",
                    "--slo-tpot-ms", "20", "--replicas", "2", "--tolerance", "0.2", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert 0 < out["goodput_requests_per_s"] < out["failing_requests_per_s"]
    assert out["goodput_requests_per_s_per_replica"] == out["goodput_requests_per_s"] / 2
    passed = [t for t in out["trials"] if t["meets_slo"]]
    assert max(t["requests_per_s"] for t in passed) == out["goodput_requests_per_s"]


@pytest.mark.parametrize("args, message", [
    (["simulate", *BASE, "--lin", "8", "--lout", "2", "--replicas", "2"],
     "a cluster run needs an open loop: give --qps RATE or --trace-file FILE"),
    (["simulate", *BASE, "--trace-file", EXAMPLE, "--qps", "3"],
     "--trace-file and --qps both given: the file holds the arrival times"),
    (["simulate", *BASE, "--lin", "8", "--lout", "2", "--qps", "3", "--replicas", "2", "--arrivals", "burst"],
     "--arrivals 'burst': expected poisson or gamma:CV"),
    (["simulate", *BASE, "--lin", "8", "--lout", "2", "--qps", "3", "--replicas", "2", "--arrivals", "gamma:x"],
     "--arrivals gamma:x: CV must be a number, e.g. gamma:2"),
    (["simulate", *BASE, "--lin", "8", "--lout", "2", "--qps", "3", "--replicas", "2", "--router", "least-kv",
      "--workers", "2"],
     "--router least-kv routes by the replicas' load, so they run in one process: drop --workers/--scheduler or "
     "use round-robin or random"),
    (["simulate", *BASE, "--trace-file", EXAMPLE, "--routing", "uniform"],
     "--routing uniform: a cluster run takes balanced expert routing only"),
    (["capacity", *BASE, "--lin", "8", "--lout", "2", "--slo-ttft-ms", "10", "--slo-tpot-ms", "1",
      "--arrivals", "gamma:-1"],
     "the burstiness (coefficient of variation) must be in (0, 100), got -1.0"),
])
def test_bad_cluster_flags_are_one_line_and_exit_1(args, message):
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    assert result.output == f"Error: {message}\n"


def test_a_malformed_trace_file_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "t.csv"
    bad.write_text("arrival_s,input_tokens,output_tokens\n0,12\n")
    result = invoke("simulate", *BASE, "--trace-file", str(bad))
    assert result.exit_code == 1
    assert result.output == f"Error: {bad}:2: expected 3 columns (arrival_s,input_tokens,output_tokens), got 2\n"


def test_simulate_without_lengths_or_a_trace_file_is_a_usage_error():
    result = invoke("simulate", *BASE)
    assert result.exit_code == 2 and "Missing option '--lin'" in result.output
