"""`opbsim simulate` and `opbsim reproduce`: JSON keys, the trace, one-line errors, usage errors."""

import json

import pytest
from click.testing import CliRunner

from opbsim.cli import cli

SMALL = ["mixtral-8x7b", "-d", "duplex", "--devices-per-node", "4", "--batch", "2", "--lin", "16", "--lout", "3",
         "--requests", "3"]
KEYS = {"tokens_per_s", "tbt_p50_ms", "tbt_p90_ms", "tbt_p99_ms", "ttft_p50_ms", "e2e_p50_s", "energy_per_token_mJ",
        "decode_only_stage_share", "max_batch"}


def invoke(*args):
    return CliRunner().invoke(cli, list(args))


def test_simulate_json_has_the_metrics_the_issue_names_and_the_trace_has_one_event_per_stage(tmp_path):
    trace = tmp_path / "stages.json"
    result = invoke("simulate", *SMALL, "--json", "--trace", str(trace))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert KEYS <= set(out)
    assert out["output_tokens"] == 9 and out["max_batch"] == 2 and out["policy"] == "duplex"
    assert set(out["utilisation_by_unit"]) == {"xpu", "pim", "dma"}
    assert set(out["time_share_by_class"]) >= {"fc", "attention", "moe", "communication"}
    parts = out["energy_breakdown_mJ_per_token"]
    assert set(parts) == {"compute", "dram_activation", "dram_column", "dram_datapath", "sram", "static",
                          "interconnect"}
    assert sum(parts.values()) == pytest.approx(out["energy_per_token_mJ"], rel=1e-9)  # the parts add up
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" for e in events) == out["stages"]


def test_simulate_prints_a_table_by_default_and_takes_the_gpu_baseline_policy_on_a_gpu():
    result = invoke("simulate", *SMALL[:2], "h100", *SMALL[3:])
    assert result.exit_code == 0, result.output
    assert "1 x 4 h100, policy xpu-only" in result.output and "time between tokens p50" in result.output
    assert "DRAM row activations" in result.output and "static (leakage, DRAM background)" in result.output


def test_simulate_open_loop_and_gaussian_lengths_run():
    result = invoke("simulate", *SMALL, "--qps", "100", "--lin-std", "4", "--json", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["loop"] == "open"


@pytest.mark.parametrize("args, message", [
    (["-d", "tpu"], "Error: unknown device 'tpu'"),
    (["-p", "duplex", "-d", "h100"], "Error: policy duplex needs a pim unit, which device h100 lacks"),
    (["--nodes", "3"], "Error: ep (3) must divide num_experts (8)"),
    (["--tp", "4", "--ep", "3"], "Error: ep (3) must divide tp x dp (4 x 1 = 4)"),
    (["--tp", "4", "--dp", "2", "--ep", "2", "--etp", "2"],
     "Error: ep x etp (2 x 2 = 4) must equal tp x dp (4 x 2 = 8), the devices that hold the experts"),
    (["--tp", "4", "--devices-per-node", "4"], "Error: --devices-per-node/--nodes and --tp/--dp/--ep/--etp/--pp "
     "both given: use --tp/--dp/--ep/--etp/--pp (--devices-per-node N --nodes M is tp=etp=N, dp=ep=M)"),
    (["--parallel", "tp=4,xp=2"],
     "Error: --parallel 'tp=4,xp=2': expected NAME=N,... with NAME in tp, dp, ep, etp, pp"),
    (["--devices-per-node", "3"], "Error: tp (3) must divide num_heads (32)"),
    (["--routing", "zipf:x"], "Error: --routing zipf:x: the skew must be a number"),
    (["--routing", "skew:0"], "Error: --routing skew:0: concentration must be a number in (0, 1e+06], got 0.0"),
    (["--routing", "skew:2,1.5"], "Error: --routing skew:2,1.5: correlation must be a number in 0..1, got 1.5"),
    (["--routing", "skew:a"], "Error: --routing skew:a: the concentration and correlation must be numbers"),
    (["--routing", "skew:1,2,3"],
     "Error: --routing skew:1,2,3: expected skew, skew:CONCENTRATION or skew:CONCENTRATION,CORRELATION"),
])
def test_simulate_bad_input_is_one_line_and_exit_1(args, message):
    base = ["mixtral-8x7b", "-d", "duplex", "--batch", "2", "--lin", "16", "--lout", "3", "--requests", "2"]
    result = invoke("simulate", *base, *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith(message) and result.output.count("\n") == 1


def test_simulate_a_model_too_large_for_the_devices_is_one_line_exit_1():
    result = invoke("simulate", "llama-3-70b", "-d", "h100", "--tp", "1", "--batch", "2", "--lin", "16", "--lout", "3")
    assert result.exit_code == 1
    assert result.output.startswith("Error: does not fit: llama-3-70b needs 131.4 GiB of weights")
    assert result.output.endswith("use more devices (--tp, --ep or --pp)\n")
    assert result.output.count("\n") == 1


@pytest.mark.parametrize("args", [["--batch", "0"], ["--qps", "0"], ["--lin", "x"], ["--bogus"], []])
def test_simulate_usage_errors_exit_2(args):
    base = ["mixtral-8x7b", "-d", "duplex", "--lin", "16", "--lout", "3"]
    if args != []:
        base += ["--batch", "2"]
    result = invoke("simulate", *base, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_a_failed_simulation_writes_no_trace(tmp_path):
    trace = tmp_path / "t.json"
    result = invoke("simulate", *SMALL, "--routing", "bogus", "--trace", str(trace))
    assert result.exit_code == 1 and not trace.exists()


def test_the_duplex_section_replaces_its_earlier_self_and_keeps_the_rest_of_the_page(tmp_path):
    from opbsim.report.reproduce_render import BEGIN, END, write_section

    page = tmp_path / "validation.md"
    write_section(page, f"{BEGIN}\n## Duplex\nfirst\n{END}\n")
    assert page.read_text().startswith("# Validation: reproduction of published results\n\n" + BEGIN)
    page.write_text(page.read_text() + "\n<!-- other: begin -->\nkept\n<!-- other: end -->\n")
    write_section(page, f"{BEGIN}\n## Duplex\nsecond\n{END}\n")
    text = page.read_text()
    assert "second" in text and "first" not in text and "kept" in text and text.count(BEGIN) == 1


@pytest.mark.slow
def test_reproduce_duplex_quick_prints_every_row_and_writes_its_section(tmp_path):
    page = tmp_path / "validation.md"
    result = CliRunner().invoke(cli, ["reproduce", "duplex", "--quick", "-o", str(page)])
    assert result.exit_code == 0, result.output
    for claim in ("throughput vs GPU, Duplex+PE+ET", "energy per token vs GPU, max reduction (GLaM)",
                  "MHA model (OPT-66B)", "GQA model (Llama-3-70B)", "Grok-1 (2 nodes)", "decode-only stages"):
        assert claim in result.output
    assert page.read_text().count("## Duplex (arXiv 2409.01141)") == 1


@pytest.mark.parametrize("layout, devices", [(["--tp", "4", "--ep", "4"], 4), (["--tp", "4", "--dp", "2"], 8),
                                             (["--parallel", "tp=2,ep=2,pp=2"], 4)])
def test_simulate_runs_expert_parallel_data_parallel_and_pipelined_layouts(layout, devices):
    base = ["mixtral-8x7b", "-d", "duplex", "--batch", "8", "--lin", "64", "--lout", "4", "--requests", "8"]
    result = invoke("simulate", *base, *layout, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["nodes"] * out["devices_per_node"] == devices
    assert 0 < out["communication_share"] < 1
    assert out["decode_stage_ms_mean"] < out["prefill_stage_ms_mean"]
    assert sum(out["time_share_by_bound"].values()) == pytest.approx(1.0)


def test_expert_parallelism_exchanges_rows_where_expert_tensor_parallelism_reduces_partial_sums():
    base = ["mixtral-8x7b", "-d", "h100", "--batch", "16", "--lin", "64", "--lout", "8", "--requests", "16", "--json"]
    et = json.loads(invoke("simulate", *base, "--tp", "4").stdout)
    ep = json.loads(invoke("simulate", *base, "--tp", "4", "--ep", "4").stdout)
    assert et["parallel"] == "tp=4,dp=1,ep=1,etp=4,pp=1" and ep["parallel"] == "tp=4,dp=1,ep=4,etp=1,pp=1"
    assert ep["communication_share"] > et["communication_share"]  # two all-to-alls and an all-gather per MoE layer


def test_a_model_too_large_for_sn40l_names_its_hbm_capacity():
    result = invoke("simulate", "grok-1", "-d", "sn40l", "--tp", "1", "--batch", "2", "--lin", "8", "--lout", "2")
    assert result.exit_code == 1
    assert "on each sn40l (60 GiB of HBM); use more devices" in result.output  # [S] "64 GB" = 64e9 B
