"""Hardware as data: device files, --hw overrides, `devices show` and `devices export`."""

import json

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.compiler.policies import default_policy
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.hardware.params import apply_hw, hw_params, read_hw


def write(tmp_path, content, name="dev.json"):
    path = tmp_path / name
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return str(path)


def test_a_device_file_is_its_base_with_the_parameters_changed(tmp_path):
    spec = get_device(write(tmp_path, {"name": "h100-2x", "base": "h100", "hw": {"hbm_bw_GBps": 6704}}))
    assert spec.name == "h100-2x" and spec.base == "h100"
    assert spec.channel_bw_GBps("hbm") == 6704
    assert spec.units == get_device("h100").units


def test_a_device_derived_from_bank_pim_keeps_its_policy(tmp_path):
    spec = get_device(write(tmp_path, {"name": "bp", "base": "bank-pim", "hw": {"hbm_GiB": 96}}))
    assert default_policy(spec) == "bank-pim"


def test_the_pim_bandwidth_follows_the_hbm_bandwidth_unless_given():
    duplex = get_device("duplex")
    doubled = apply_hw(duplex, {"hbm_bw_GBps": 2 * duplex.channel_bw_GBps("hbm")})
    assert doubled.channel_bw_GBps("hbm_internal") == 2 * duplex.channel_bw_GBps("hbm_internal")
    pinned = apply_hw(duplex, {"hbm_bw_GBps": 6704, "pim_bw_GBps": 10_000})
    assert pinned.channel_bw_GBps("hbm_internal") == 10_000


@pytest.mark.parametrize("content, message", [
    ({"base": "h100"}, "name is missing"),
    ({"name": "x", "base": "h100", "speed": 2}, "unknown key 'speed' (known: name, base, description, hw)"),
    ({"name": "x", "base": "tpu"}, "unknown device 'tpu' (known: "),
    ({"name": "x", "base": "other.json"}, "base must name a registered device (see `opbsim devices`), got "
                                          "'other.json'"),
    ({"name": "a b", "base": "h100"}, "name must be 1 to 64 letters, digits or .-_+, got 'a b'"),
    ({"name": "x", "base": "h100", "hw": {"pim_bw_multiple": 8}}, "hw.pim_bw_multiple: device h100 has no PIM"),
    ({"name": "x", "base": "h100", "hw": {"hbm_bw_GBps": -1}}, "hw.hbm_bw_GBps: must be a finite positive number"),
    ([1, 2], "a device file is one mapping (name, base, hw, description)"),
    ("{", "not valid JSON"),
])
def test_a_bad_device_file_is_one_line_naming_the_file_and_the_problem(tmp_path, content, message):
    path = write(tmp_path, content)
    with pytest.raises(InputError) as err:
        get_device(path)
    assert str(err.value).startswith(path) and message in str(err.value)


def test_a_missing_device_file_names_the_path(tmp_path):
    with pytest.raises(InputError, match="no_such.json: no such device file"):
        get_device(str(tmp_path / "no_such.json"))


def test_every_parameter_reads_back_what_it_sets():
    for name in ("duplex", "sn40l", "h100"):
        spec = get_device(name)
        for param, value in read_hw(spec).items():
            if param == "collective_latency_scale":
                continue
            changed = apply_hw(spec, {param: value * 1.5})
            assert hw_params(spec)[param].read(changed) == pytest.approx(value * 1.5), (name, param)


def test_an_exported_device_file_loads_back_as_the_same_device(tmp_path):
    out = tmp_path / "d.json"
    result = CliRunner().invoke(cli, ["devices", "export", "duplex", "-o", str(out)])
    assert result.exit_code == 0 and result.output == f"wrote {out}\n"
    loaded = get_device(str(out))
    assert loaded.name == "duplex-custom"
    preset = get_device("duplex")
    assert (loaded.units, loaded.channels, loaded.memories, loaded.paths) == \
           (preset.units, preset.channels, preset.memories, preset.paths)
    assert "pim_bw_GBps" not in json.loads(out.read_text())["hw"]  # the multiple follows an edited HBM bandwidth


def test_devices_show_json_lists_every_field_and_parameter():
    result = CliRunner().invoke(cli, ["devices", "show", "duplex", "--json"])
    assert result.exit_code == 0
    shown = json.loads(result.output)
    assert shown["default_policy"] == "duplex"
    assert set(shown["device"]) >= {"name", "units", "memories", "channels", "paths", "flop_energy_pJ",
                                    "interconnect", "source", "model", "base"}
    assert shown["hw"]["pim_bw_multiple"] == 4.0


def test_devices_show_prints_units_from_the_field_names():
    result = CliRunner().invoke(cli, ["devices", "show", "h100"])
    assert result.exit_code == 0
    assert any(line.startswith("channels[hbm].bw_GBps") and line.rstrip().endswith("GB/s")
               for line in result.output.splitlines())


def test_hw_overrides_rename_the_device_in_what_simulate_prints():
    result = CliRunner().invoke(cli, ["simulate", "mixtral-8x7b", "-d", "duplex", "--hw", "hbm_bw_GBps=6704",
                                      "--tp", "4", "--batch", "2", "--lin", "8", "--lout", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert "duplex[hbm_bw_GBps=6704]" in result.output


@pytest.mark.parametrize("flag, message", [
    ("hbm_bw_GBps", "--hw 'hbm_bw_GBps': expected KEY=VALUE, e.g. hbm_bw_GBps=6704"),
    ("hbm_bw_GBps=fast", "--hw hbm_bw_GBps: 'fast' is not a number"),
    ("warp_factor=9", "hw.warp_factor: unknown hardware parameter (known: "),
])
def test_a_bad_hw_flag_is_one_line(flag, message):
    result = CliRunner().invoke(cli, ["simulate", "mixtral-8x7b", "-d", "h100", "--hw", flag, "--batch", "2",
                                      "--lin", "8", "--lout", "2"])
    assert result.exit_code == 1 and result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {message}")
