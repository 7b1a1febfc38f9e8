"""opbsim compare: the table, the JSON, devices that cannot run, energy by component, op placement."""

from __future__ import annotations

import json
import math
import re

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.compiler import compile_graph
from opbsim.emulator.engine import run
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.isa.types import Unit
from opbsim.report.compare import CompareSettings, compare, default_policy, resolve, simulate_args
from opbsim.report.compare_render import HEADER, comparison_json, comparison_table, table_rows
from opbsim.report.energy import COMPONENTS, energy_J_by_component
from opbsim.workloads import Stage, load_model
from opbsim.workloads.graph import ModelGraph, build_layer
from tests.unit.report.conftest import tiny_settings


def test_the_table_has_one_row_per_device_in_order_with_the_serving_numbers(tiny_comparison):
    rows = table_rows(tiny_comparison)
    assert [r[0] for r in rows] == ["h100", "duplex", "sn40l"]
    h100, duplex = (tiny_comparison.runs[i].result for i in (0, 1))
    assert rows[0][1:5] == ("xpu-only", "4", f"{h100.tokens_per_s:.1f}", "1.00x")
    assert rows[1][1:5] == ("duplex", "4", f"{duplex.tokens_per_s:.1f}",
                            f"{duplex.tokens_per_s / h100.tokens_per_s:.2f}x")
    assert len(rows[0]) == len(HEADER)
    assert "baseline: h100" in comparison_table(tiny_comparison)


def test_a_device_that_cannot_run_keeps_its_row_with_the_reason(tiny_comparison):
    sn40l = tiny_comparison.runs[2]
    assert not sn40l.ok and "needs a xpu unit" in sn40l.error
    row = table_rows(tiny_comparison)[2]
    assert row[:4] == ("sn40l", "duplex", "-", "cannot run")
    assert comparison_table(tiny_comparison).endswith(f"\nsn40l cannot run: {sn40l.error}")
    assert all(p.tokens_per_s is None and p.error == sn40l.error for p in sn40l.curve)
    obj = json.loads(comparison_json(tiny_comparison))
    assert [d["status"] for d in obj["devices"]] == ["ok", "ok", "cannot run"]


def test_a_model_that_does_not_fit_is_reported_for_every_device_not_dropped():
    comp = compare(CompareSettings(model="mixtral-8x7b", devices=("h100", "duplex"), batches=(64,)))
    assert [r.device for r in comp.runs] == ["h100", "duplex"]
    assert all(r.error.startswith("does not fit: mixtral-8x7b needs 87.0 GiB") for r in comp.runs)
    assert "no device could run" in comparison_table(comp)


def test_the_headline_numbers_are_those_of_opbsim_simulate(tiny_comparison):
    runner = CliRunner()
    s = tiny_comparison.settings
    for r in tiny_comparison.runs[:2]:
        out = runner.invoke(cli, ["simulate", *simulate_args(s, r.device, r.policy), "--json"])
        assert out.exit_code == 0, out.output
        assert json.loads(out.output) == json.loads(json.dumps(r.result.summary()))


def test_the_energy_split_of_a_serving_run_sums_to_its_energy_per_token(tiny_comparison):
    for r in tiny_comparison.runs[:2]:
        parts = dict(r.energy_mJ_by_component)
        assert math.isclose(sum(parts.values()), r.result.energy_per_token_mJ, rel_tol=1e-9)
        assert set(parts) == set(COMPONENTS)
    h100, duplex = (dict(r.energy_mJ_by_component) for r in tiny_comparison.runs[:2])
    assert duplex["dram_datapath"] < h100["dram_datapath"]  # Logic-PIM reads over the TSVs, not PHY and interposer


@pytest.mark.parametrize(("device", "policy"), [("h100", "xpu-only"), ("duplex", "duplex"), ("sn40l", "sn40l")])
def test_energy_by_component_adds_up_to_the_engines_energy(tiny_model, device, policy):
    model, spec = load_model(tiny_model), get_device(device)
    graph = ModelGraph(model, Stage.decode(4, 40), 1, (), (build_layer(model, Stage.decode(4, 40), 1),), ())
    program = compile_graph(graph, spec, policy).program
    parts = energy_J_by_component(program, spec)
    assert math.isclose(sum(parts.values()), run(program, spec).energy_J, rel_tol=1e-12)
    assert parts["compute"] > 0 and parts["static"] > 0


def test_the_roofline_places_each_op_on_the_unit_its_policy_chose(tiny_comparison):
    h100, duplex = tiny_comparison.runs[0], tiny_comparison.runs[1]
    assert {p.unit for p in h100.roofline} <= {Unit.XPU, Unit.DMA}
    units = {p.name.split(".", 1)[1]: p.unit for p in duplex.roofline}
    assert units["attn_decode"] is Unit.PIM and units["qkv_proj"] is Unit.XPU  # Op/B 4 vs ~batch
    decode_attention = next(p for p in duplex.roofline if p.name.endswith("attn_decode"))
    assert 3.5 < decode_attention.op_per_B < 4  # GQA group 8 / 2 = 4, less the queries' and outputs' bytes


def test_the_timelines_of_duplex_show_the_xpu_and_the_pim_working_in_decode_and_mixed_stages(tiny_comparison):
    duplex = tiny_comparison.runs[1]
    assert [t.kind for t in duplex.timelines] == ["decode", "mixed"]
    for t in duplex.timelines:
        busy = dict(t.stats.busy_s_by_unit)
        assert busy[Unit.XPU] > 0 and busy[Unit.PIM] > 0
        assert {c for shares in t.shares.values() for c in shares} >= {"fc", "attention", "moe"}
    assert "decode-only stage: 4 requests at 36 tokens" in duplex.timelines[0].stage  # lin + lout / 2
    assert "mixed stage: 3 decode requests at 36 tokens of context + a 32-token prompt chunk" in \
        duplex.timelines[1].stage


def test_each_roofline_op_carries_its_time_on_the_engine(tiny_comparison):
    duplex = tiny_comparison.runs[1]
    attn = next(p for p in duplex.roofline if p.name.endswith("attn_decode"))
    stats = duplex.timelines[0].stats
    assert 0 < attn.time_s < stats.time_s
    assert attn.attained_flop_per_s == attn.flops / attn.time_s
    obj = json.loads(comparison_json(tiny_comparison))["devices"][1]
    op = next(o for o in obj["roofline_ops"] if o["op"].endswith("attn_decode"))
    assert op["time_s"] == attn.time_s and op["attained_flop_per_s"] == attn.attained_flop_per_s
    assert set(obj["layer_timelines"]) == {"decode", "mixed"}
    assert obj["layer_timelines"]["decode"]["time_s"] == stats.time_s


def test_a_dataflow_devices_fused_kernels_are_split_over_their_ops_classes_not_counted_as_other(sn40l_comparison):
    (run,) = sn40l_comparison.runs
    share = dict(run.result.time_share_by_class)
    assert share["moe"] > share["other"] and share["attention"] > 0 and share["fc"] > 0
    striped = [s for t in run.timelines for s in t.shares.values() if len(s) > 1]
    assert striped and all(sum(s.values()) == pytest.approx(1.0) for s in striped)


def test_default_policies_follow_the_device():
    assert [default_policy(get_device(d)) for d in ("h100", "duplex", "bank-pim", "bankgroup-pim", "sn40l")] == \
        ["xpu-only", "duplex", "bank-pim", "duplex", "sn40l"]


def test_settings_refuse_a_repeated_device_and_a_policy_for_an_unlisted_one(tiny_model):
    with pytest.raises(InputError, match="listed twice"):
        tiny_settings(tiny_model, devices=("h100", "h100"))
    with pytest.raises(InputError, match="a100 is not among --devices"):
        tiny_settings(tiny_model, policies=(("a100", "xpu-only"),))


def test_cli_compare_prints_the_table_and_writes_the_report(tiny_model, tmp_path):
    out = CliRunner().invoke(cli, ["compare", tiny_model, "--devices", "h100,duplex", "--batch", "4", "--batches",
                                   "2,4", "--lin", "32", "--lout", "8", "-o", str(tmp_path / "rep"), "--no-progress"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines()[1].split()[:3] == ["device", "policy", "batch"]
    assert {"report.md", "report.json", "roofline.png", "trace_duplex_decode.json", "trace_duplex_mixed.json"} <= \
        {p.name for p in (tmp_path / "rep").iterdir()}


@pytest.mark.parametrize(("args", "message"), [
    (["--devices", "h100,warp-drive"], "unknown device 'warp-drive'"),
    (["--policy", "duplex"], "expected DEVICE=POLICY"),
    (["--batches", "4,x"], "--batches '4,x': expected positive integers"),
])
def test_cli_compare_bad_input_is_one_line_and_exit_status_1(tiny_model, args, message):
    out = CliRunner().invoke(cli, ["compare", tiny_model, "--no-progress", *args])
    assert out.exit_code == 1
    assert message in out.output and len(out.output.strip().splitlines()) == 1


def test_one_device_under_two_policies_is_two_runs_labelled_by_device_and_policy(tiny_model, tmp_path):
    out = CliRunner().invoke(cli, ["compare", tiny_model, "--devices", "h100,duplex:duplex,duplex:duplex-no-pe",
                                   "--batch", "4", "--batches", "4", "--lin", "32", "--lout", "8", "--no-progress",
                                   "-o", str(tmp_path / "rep")])
    assert out.exit_code == 0, out.output
    table = out.output.splitlines()
    assert [line.split("  ")[0] for line in table[3:6]] == ["h100", "duplex (duplex)", "duplex (duplex-no-pe)"]
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert [(d["label"], d["device"], d["policy"]) for d in report["devices"]] == [
        ("h100", "h100", "xpu-only"), ("duplex (duplex)", "duplex", "duplex"),
        ("duplex (duplex-no-pe)", "duplex", "duplex-no-pe")]
    assert report["settings"]["devices"] == ["h100", "duplex:duplex", "duplex:duplex-no-pe"]
    assert {"trace_h100_mixed.json", "trace_duplex_duplex_mixed.json", "trace_duplex_duplex-no-pe_decode.json"} <= \
        {p.name for p in (tmp_path / "rep").iterdir()}


def test_the_policy_flag_applies_to_the_entries_of_its_device_that_name_none(tiny_model):
    s = tiny_settings(tiny_model, devices=("duplex", "duplex:duplex"), policies=(("duplex", "duplex-no-pe"),))
    plans = resolve(s)[1]
    assert [(p.label, p.policy) for p in plans] == [("duplex (duplex-no-pe)", "duplex-no-pe"),
                                                    ("duplex (duplex)", "duplex")]


@pytest.mark.parametrize(("devices", "policy", "message"), [
    ("duplex:", (), "^--devices 'duplex:': expected DEVICE or DEVICE:POLICY, e.g. duplex:duplex-no-pe$"),
    (":duplex", (), "^--devices ':duplex': expected DEVICE or DEVICE:POLICY, e.g. duplex:duplex-no-pe$"),
    ("duplex:a:b", (), "^--devices 'duplex:a:b': expected DEVICE or DEVICE:POLICY, e.g. duplex:duplex-no-pe$"),
    ("duplex:warp", (), r"^--devices duplex:warp: unknown policy 'warp' \(known: bank-pim, duplex, .*\)$"),
    ("duplex", ("-p", "duplex=warp"), r"^--policy duplex=warp: unknown policy 'warp' \(known: .*\)$"),
    ("duplex,duplex:duplex", (), r"^--devices: duplex runs policy duplex twice \(duplex, duplex:duplex\)$"),
    ("duplex:duplex,duplex:duplex", (), r"^--devices: a device is listed twice \(duplex:duplex, duplex:duplex\)$"),
    ("duplex:duplex-no-pe", ("-p", "duplex=duplex"),
     "^--policy duplex=duplex: every duplex entry of --devices names its own policy$"),
])
def test_a_bad_device_entry_is_one_exact_error_line(tiny_model, devices, policy, message):
    out = CliRunner().invoke(cli, ["compare", tiny_model, "--devices", devices, *policy, "--no-progress"])
    assert out.exit_code == 1
    assert len(out.output.splitlines()) == 1
    assert re.match(message, out.output.removeprefix("Error: ").rstrip("\n"))
