"""Sweep files: the grid they expand to, and one clear error naming the key for a bad one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.errors import InputError
from opbsim.hardware import get_device
from opbsim.hardware.params import HW_PARAMS, apply_hw
from opbsim.isa.types import Space
from opbsim.report.sweep_spec import config_hash, expand, load_sweep, parse_sweep
from tests.unit.sweep.conftest import sweep_dict


def test_a_sweep_is_the_product_of_each_grids_lists(sweep_file):
    configs = load_sweep(sweep_file)
    assert len(configs) == 2 * 2 * (1 + 2 + 1)  # batches x lengths x (h100, duplex x 2 bandwidths, sn40l)
    assert len({config_hash(c) for c in configs}) == len(configs)
    duplex = [c for c in configs if c["device"] == "duplex"]
    assert {c["hw"]["pim_bw_multiple"] for c in duplex} == {2.0, 4.0}
    assert {c["policy"] for c in duplex} == {"duplex"}  # auto: the device's default policy
    assert {c["policy"] for c in configs if c["device"] == "h100"} == {"xpu-only"}
    assert all(c["requests"] == c["batch"] for c in configs)  # one request per batch slot by default


def test_yaml_and_json_files_give_the_same_configurations(tmp_path, tiny_model, sweep_file):
    yaml = pytest.importorskip("yaml")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep_dict(tiny_model)))
    assert load_sweep(path) == load_sweep(sweep_file)


def test_a_configuration_listed_twice_runs_once(tiny_model):
    grids = parse_sweep({"model": tiny_model, "device": "h100", "policy": ["auto", "xpu-only"], "batch": 2,
                         "lin": 8, "lout": 4})
    assert len(expand(grids)) == 1


def test_the_hash_keys_the_whole_configuration():
    a = {"model": "m", "hw": {"x": 1.0}, "batch": 2}
    assert config_hash(a) == config_hash({"batch": 2, "hw": {"x": 1.0}, "model": "m"})
    assert config_hash(a) != config_hash({**a, "hw": {"x": 2.0}})


def test_hardware_parameters_change_the_device_they_name():
    duplex = get_device("duplex")
    hbm = duplex.channel_bw_GBps("hbm")
    spec = apply_hw(duplex, {"pim_bw_multiple": 8, "sram_MiB": 64, "xpu_TFLOPS": 500})
    assert spec.channel_bw_GBps("hbm_internal") == spec.channel_bw_GBps("pimbuf") == 8 * hbm
    assert spec.memory(Space.SRAM).capacity_B == 64 * 2**20
    assert spec.units[0].matrix_TFLOPS == 500
    assert apply_hw(get_device("sn40l"), {"ddr_bw_GBps": 400}).channel_bw_GBps("ddr") == 400
    assert set(HW_PARAMS) >= {"pim_bw_multiple", "sram_MiB", "ddr_bw_GBps"}


BAD = [
    ({"batchs": 4}, "batchs: unknown key"),
    ({"batch": [4, "x"]}, "batch: expected an integer >= 1, got 'x'"),
    ({"batch": []}, "batch: an empty list gives no configuration"),
    ({"lin": None}, "lin: expected an integer >= 1, got None"),
    ({"lengths": [[1, 2]]}, "lengths: give either lengths or lin and lout, not both"),
    ({"device": "warp"}, "device: unknown device 'warp'"),
    ({"policy": "fast"}, "policy: unknown policy 'fast'"),
    ({"model": "no-such-model"}, "model: unknown model 'no-such-model'"),
    ({"hw": {"sram_GB": 2}}, "hw.sram_GB: unknown hardware parameter (known: collective_latency_scale, ddr_GiB,"),
    ({"hw": {"pim_bw_multiple": 2}}, "hw.pim_bw_multiple: device h100 has no PIM"),
    ({"hw": {"hbm_GiB": -1}}, "hw.hbm_GiB: must be a finite positive number, got '-1'"),
    ({"routing": "skewed"}, "routing: expected balanced, uniform or zipf:SKEW (SKEW in 0..100), got 'skewed'"),
    ({"routing": "zipf:inf"}, "routing: expected balanced, uniform or zipf:SKEW (SKEW in 0..100), got 'zipf:inf'"),
    ({"routing": "zipf:1e308"}, "routing: expected balanced, uniform or zipf:SKEW (SKEW in 0..100), got 'zipf:1e308'"),
    ({"grids": {"device": "h100"}}, "grids: expected a list of mappings"),
]


@pytest.mark.parametrize(("change", "message"), BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_a_bad_sweep_file_is_one_error_naming_the_key_before_anything_runs(tmp_path, change, message):
    sweep = {"model": "mixtral-8x7b", "device": "h100", "batch": 4, "lin": 8, "lout": 8, **change}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(sweep))
    with pytest.raises(InputError) as e:
        load_sweep(path)
    assert str(e.value).startswith(f"{path}: ") and message in str(e.value)
    out = CliRunner().invoke(cli, ["sweep", str(path), "-o", str(tmp_path / "r.csv")])
    assert out.exit_code == 1 and message in out.output and len(out.output.strip().splitlines()) == 1
    assert not (tmp_path / "r.csv").exists()


def test_a_grid_without_a_required_key_names_it(tmp_path):
    with pytest.raises(InputError, match=r"grids\[1\]\.device: missing"):
        parse_sweep({"model": "m", "batch": 1, "lin": 1, "lout": 1, "grids": [{"device": "h100"}, {}]})


def test_invalid_yaml_names_the_line(tmp_path):
    pytest.importorskip("yaml")
    path = tmp_path / "bad.yaml"
    path.write_text("model: mixtral-8x7b\ndevice: [h100\n")
    with pytest.raises(InputError, match=r"bad.yaml:3:1: not valid YAML"):
        load_sweep(path)


def test_yaml_without_pyyaml_says_how_to_get_it_or_to_use_json(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "yaml", None)
    path = tmp_path / "s.yaml"
    path.write_text("model: mixtral-8x7b\n")
    with pytest.raises(InputError, match=r"needs PyYAML .*opbsim\[cluster\].*or write the sweep file as JSON"):
        load_sweep(path)


@pytest.mark.parametrize("name", ["sweep_pim_bandwidth.json", "sweep_sn40l_hbm.json"])
def test_the_tutorials_example_sweep_files_are_valid(name):
    path = Path(__file__).parents[3] / "docs" / "examples" / name
    configs = load_sweep(path)
    assert len(configs) == {"sweep_pim_bandwidth.json": 30, "sweep_sn40l_hbm.json": 8}[name]


def test_a_sweep_takes_the_layout_as_one_parallel_string_checked_up_front(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"model": "mixtral-8x7b", "device": "h100", "batch": 8, "lin": 16, "lout": 4,
                                "parallel": ["tp=4,ep=4", "tp=4,dp=2"]}))
    assert [c["parallel"] for c in load_sweep(path)] == ["tp=4,dp=1,ep=4,etp=1,pp=1", "tp=4,dp=2,ep=1,etp=8,pp=1"]
    path.write_text(json.dumps({"model": "mixtral-8x7b", "device": "h100", "batch": 8, "lin": 16, "lout": 4,
                                "parallel": "tp=4,ep=3"}))
    with pytest.raises(InputError, match=r"s\.json: parallel: ep \(3\) must divide tp x dp \(4 x 1 = 4\)$"):
        load_sweep(path)
    path.write_text(json.dumps({"model": "mixtral-8x7b", "device": "h100", "batch": 8, "lin": 16, "lout": 4,
                                "parallel": "tp=4", "nodes": 2}))
    with pytest.raises(InputError, match=r"parallel: give either parallel or devices_per_node and nodes, not both$"):
        load_sweep(path)
