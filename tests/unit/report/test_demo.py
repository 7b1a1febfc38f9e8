"""opbsim demo: the device comparison on the embedded default writes its report folder, and its
numbers are those of `opbsim simulate` for the same configuration."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.report.demo import DEMO, demo_settings


def test_the_demo_default_is_mixtral_at_batch_64_with_1024_in_and_out():
    assert (DEMO.model, DEMO.batch, DEMO.lin, DEMO.lout) == ("mixtral-8x7b", 64, 1024, 1024)
    assert [str(e) for e in DEMO.devices[:2]] == ["h100", "duplex"]
    settings, notes = demo_settings()
    assert ("sn40l" in [e.device for e in settings.devices]) == (not notes)


@pytest.mark.slow
def test_the_demo_writes_its_report_and_its_numbers_equal_opbsim_simulate(tmp_path):
    runner = CliRunner()
    out = runner.invoke(cli, ["demo", "-o", str(tmp_path / "demo"), "--no-progress"])
    assert out.exit_code == 0, out.output
    folder = tmp_path / "demo"
    names = {p.name for p in folder.iterdir()}
    assert {"report.md", "report.json", "throughput_vs_batch.png", "tbt_percentiles.png", "energy_per_token.png",
            "latency_breakdown.png", "roofline.png", "timeline.png", "trace_h100_decode.json", "trace_h100_mixed.json",
            "trace_duplex_decode.json", "trace_duplex_mixed.json"} <= names
    report = json.loads((folder / "report.json").read_text())
    assert [d["device"] for d in report["devices"]] == [e.device for e in demo_settings()[0].devices]
    assert all(d["status"] == "ok" for d in report["devices"])
    for d in report["devices"]:
        sim = runner.invoke(cli, ["simulate", *d["simulate_args"], "--json"])
        assert sim.exit_code == 0, sim.output
        assert json.loads(sim.output) == d["serving"]
        assert f"{d['serving']['tokens_per_s']:.1f}" in out.output
    md = (folder / "report.md").read_text()
    assert "## What was simulated" in md and "![Roofline with each op at its attained FLOP/s](roofline.png)" in md
