"""`opbsim time` and `opbsim devices`."""

import json
from importlib import resources

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.hardware import device_names

EXAMPLE = str(resources.files("opbsim.examples").joinpath("decode_step.s"))


def test_time_prints_json_with_time_energy_and_per_unit_busy_and_writes_a_trace(tmp_path):
    trace = tmp_path / "t.json"
    result = CliRunner().invoke(cli, ["time", EXAMPLE, "-d", "duplex", "--json", "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["device"] == "duplex"
    assert out["time_s"] > 0 and out["energy_J"] > 0
    assert sum(out["energy_J_by_component"].values()) == pytest.approx(out["energy_J"])  # the components add up
    assert set(out["busy_s"]) == {"xpu", "pim"}
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" for e in events) == 13  # the example's instructions before halt


def test_time_reads_binaries_as_well_as_text(tmp_path):
    runner = CliRunner()
    binary = tmp_path / "p.bin"
    assert runner.invoke(cli, ["asm", EXAMPLE, "-o", str(binary)]).exit_code == 0
    from_text = json.loads(runner.invoke(cli, ["time", EXAMPLE, "-d", "duplex", "--json"]).stdout)
    from_bin = json.loads(runner.invoke(cli, ["time", str(binary), "-d", "duplex", "--json"]).stdout)
    assert from_text == from_bin


def test_time_on_a_device_lacking_a_unit_or_an_unknown_device_is_one_line_exit_1(tmp_path):
    runner = CliRunner()
    no_pim = runner.invoke(cli, ["time", EXAMPLE, "-d", "h100", "--trace", str(tmp_path / "t.json")])
    assert (no_pim.exit_code, no_pim.output) == (1, "Error: device h100 has no pim unit\n")
    assert not (tmp_path / "t.json").exists()
    unknown = runner.invoke(cli, ["time", EXAMPLE, "-d", "tpu"])
    assert unknown.exit_code == 1
    assert unknown.output == f"Error: unknown device 'tpu' (known: {', '.join(device_names())}; or a device file " \
                             "NAME.json)\n"


def test_devices_lists_every_preset_with_its_source():
    out = CliRunner().invoke(cli, ["devices"]).output
    for name in device_names():
        assert name in out
    assert "Duplex paper" in out
