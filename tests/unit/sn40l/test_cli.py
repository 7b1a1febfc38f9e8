"""`opbsim coe`, `opbsim compile` with the sn40l policies, and the SN40L reproduction's pieces."""

import json

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.report.reproduce_sn40l import BENCHMARKS, reproduce_sn40l
from opbsim.report.reproduce_sn40l_render import BEGIN, END, rows_table, section_markdown, write_section

COE = ["coe", "--experts", "150", "--batch", "8", "--tokens", "20", "--batches", "32"]


def test_coe_json_gives_switch_exec_and_total_time_and_the_nodes_needed():
    out = CliRunner().invoke(cli, [*COE, "-d", "sn40l", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert {"switch_time_s", "exec_time_s", "total_time_s", "nodes_needed"} <= set(data)
    assert data["total_time_s"] == pytest.approx(data["router_time_s"] + data["switch_time_s"] + data["exec_time_s"])
    assert data["nodes_needed"] == 1 and not data["out_of_memory"]


def test_coe_beyond_a_dgxs_host_memory_reports_out_of_memory():
    out = CliRunner().invoke(cli, ["coe", "--experts", "400", "--batch", "8", "--tokens", "20", "-d", "dgx-a100"])
    assert out.exit_code == 0
    assert "total per batch             out of memory" in out.output


def test_coe_on_an_unknown_node_is_a_one_line_error():
    out = CliRunner().invoke(cli, [*COE, "-d", "h100"])
    assert out.exit_code == 1
    assert out.output == "Error: unknown node 'h100' (known: dgx-a100, dgx-h100, sn40l)\n"


def test_compile_accepts_the_sn40l_device_and_policy_and_dumps_the_fuse_pass():
    args = ["compile", "llama-2-7b", "-d", "sn40l", "-p", "sn40l", "--batch", "1", "--tp", "8", "--layer", "0"]
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "pcu 19" in out.output and "dma" not in out.output  # every op a stage, the all-reduces included
    dump = CliRunner().invoke(cli, [*args, "--dump-after", "fuse"])
    assert "L0.attn_norm..L0.ffn_all_reduce" in dump.output


@pytest.fixture(scope="module")
def small_reproduction():
    return reproduce_sn40l(benchmarks=BENCHMARKS[:1], experts_grid=(10, 60, 200))


def test_the_reproduction_has_every_sn40l_row_of_targets_md_with_a_cause_for_each_miss(small_reproduction):
    rows = small_reproduction.rows
    assert len(rows) == 10
    assert all(r.status.startswith(("within tolerance", "MISS")) for r in rows)
    assert all(r.cause for r in rows if r.status.startswith("MISS"))
    assert "causes of the misses" in rows_table(small_reproduction) or all(not r.cause for r in rows)


def test_the_validation_section_replaces_its_earlier_self_and_keeps_the_rest_of_the_page(tmp_path,
                                                                                            small_reproduction):
    page = tmp_path / "validation.md"
    page.write_text("# Validation\n\n## Duplex\n\nduplex rows\n")
    section = section_markdown(small_reproduction, "opbsim reproduce sn40l")
    write_section(page, section)
    write_section(page, section)
    text = page.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    assert text.startswith("# Validation\n\n## Duplex\n\nduplex rows\n")
    assert "## SN40L (arXiv 2405.07518)" in text


def test_the_kernel_tables_give_each_benchmarks_kernel_counts_and_its_boundary_by_part(small_reproduction):
    from opbsim.hardware.device_models.dataflow import BOUNDARY_PARTS
    from opbsim.report.reproduce_sn40l_render import kernels_table

    run = small_reproduction.kernels[0]
    assert run.kernels["sn40l"] < run.kernels["sn40l-unfused"]
    per_kernel = run.per_kernel_us("sn40l-unfused")
    assert set(per_kernel) == set(BOUNDARY_PARTS) and per_kernel["launch"] > 0
    text = kernels_table(small_reproduction)
    assert f"{run.kernels['sn40l']} / {run.kernels['sn40l-unfused']}" in text
    assert all(part in text for part in BOUNDARY_PARTS)
    assert "### Kernel boundaries" in section_markdown(small_reproduction, "opbsim reproduce sn40l")


def test_a_program_of_pcu_kernels_takes_the_sum_of_its_kernels_plans_and_variants_scale_one_parameter():
    from opbsim.compiler import compile_graph
    from opbsim.emulator.engine import run
    from opbsim.hardware import get_device
    from opbsim.report.reproduce_sn40l_kernels import program_time, variant_device
    from opbsim.workloads import Stage, build_model, get_preset

    sn40l = get_device("sn40l")
    model = __import__("dataclasses").replace(get_preset("llama-2-7b"), num_layers=2)
    for policy in ("sn40l", "sn40l-unfused-sw"):
        program = compile_graph(build_model(model, Stage.decode(2, 128), tp=8), sn40l, policy).program
        assert program_time(program, sn40l) == pytest.approx(run(program, sn40l).time_s, rel=1e-12)
    slower = variant_device(sn40l, "host_sync_us", 2.0)
    assert slower.model.params.host_sync_us == 2 * sn40l.model.params.host_sync_us
    assert variant_device(sn40l, "config_B_per_unit", 0.5).model.params.config_B_per_unit == 512
    links = variant_device(sn40l, "link_latency", 2.0).interconnect.library.costs[0]
    assert links.intra_step_us == 2 * sn40l.interconnect.library.costs[0].intra_step_us


def test_the_sensitivity_table_has_a_row_per_assumed_parameter_halved_and_doubled(small_reproduction):
    from opbsim.report.reproduce_sn40l_kernels import SENSITIVITY
    from opbsim.report.reproduce_sn40l_render import sensitivity_markdown

    table = sensitivity_markdown(small_reproduction)
    assert table.count("\n") == 3 + 2 * len(SENSITIVITY)  # header, rule, as assumed, each twice, per-bank refresh
    assert "host_sync_us x0.5" in table and "link latency x2" in table and "hbm refresh per-bank" in table


def test_the_coe_speedups_show_their_sensitivity_to_the_assumed_prompt_length(small_reproduction):
    from opbsim.report.reproduce_sn40l import PROMPTS, coe_speedup

    assert set(small_reproduction.prompts) == set(PROMPTS)
    row = next(r for r in small_reproduction.rows if r.claim.endswith("speedup vs DGX H100"))
    for p in PROMPTS[1:]:
        assert f"{p}: {coe_speedup(small_reproduction.prompts[p], 'dgx-h100'):.2f}x" in row.ours
    assert "### CoE vs the assumed prompt length" in section_markdown(small_reproduction, "opbsim reproduce sn40l")
