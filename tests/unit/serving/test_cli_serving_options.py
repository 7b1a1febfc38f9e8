"""The serving-engine flags: --preemption and --cuda-graphs/--eager reach the serving options of
simulate, compare and capacity; a bad value is one line and exit 1."""

import pytest
from click.testing import CliRunner

import opbsim.emulator.fleet_run as fleet_run
import opbsim.emulator.serving as serving
import opbsim.report.compare as compare_mod
from opbsim.cli import cli
from opbsim.errors import InputError
from opbsim.report.compare import CompareSettings, simulate_args

SMALL = ["mixtral-8x7b", "-d", "h100", "--tp", "4", "--batch", "2", "--lin", "16", "--lout", "3", "--requests", "3"]


def _captured_simulate(monkeypatch) -> list:
    seen = []
    real = serving.simulate

    def spy(model, cluster, scenario, config, **kw):
        seen.append(config)
        return real(model, cluster, scenario, config, **kw)

    monkeypatch.setattr(serving, "simulate", spy)
    return seen


@pytest.mark.parametrize("flags, preemption, graphs", [
    ([], "none", True), (["--eager"], "none", False),
    (["--cuda-graphs", "--preemption", "recompute"], "recompute", True),
])
def test_simulate_s_flags_reach_its_serving_config(monkeypatch, flags, preemption, graphs):
    seen = _captured_simulate(monkeypatch)
    result = CliRunner().invoke(cli, ["simulate", *SMALL, "--json", "--no-progress", *flags])
    assert result.exit_code == 0, result.output
    assert [(c.preemption, c.cuda_graphs) for c in seen] == [(preemption, graphs)]


def test_compare_s_flags_reach_its_settings_and_the_simulate_line_it_prints(monkeypatch):
    seen = []

    def stop(settings):
        seen.append(settings)
        raise InputError("stopped here")

    monkeypatch.setattr(compare_mod, "resolve", stop)
    result = CliRunner().invoke(cli, ["compare", "mixtral-8x7b", "--devices", "h100", "--eager",
                                      "--preemption", "recompute", "--no-progress"])
    assert result.exit_code == 1 and result.output == "Error: stopped here\n"
    s = seen[0]
    assert (s.preemption, s.cuda_graphs) == ("recompute", False)
    assert (s.serving(8).preemption, s.serving(8).cuda_graphs, s.serving(8).batch) == ("recompute", False, 8)
    args = simulate_args(s, "h100", "xpu-only")
    assert args[-3:] == ["--preemption", "recompute", "--eager"]
    assert "--eager" not in simulate_args(CompareSettings(model="m", devices=("h100",)), "h100", "xpu-only")


def test_capacity_s_launch_flag_reaches_its_fleet_config(monkeypatch):
    seen = []

    def stop(model, cluster, trace, config, **kw):
        seen.append(config)
        raise InputError("stopped here")

    monkeypatch.setattr(fleet_run, "simulate_fleet", stop)
    result = CliRunner().invoke(cli, ["capacity", "mixtral-8x7b", "-d", "h100", "--tp", "4", "--lin", "16",
                                      "--lout", "3", "--slo-ttft-ms", "100", "--slo-tpot-ms", "50", "--eager"])
    assert result.exit_code == 1 and result.output == "Error: stopped here\n"
    assert seen[0].cuda_graphs is False


@pytest.mark.parametrize("command", [["simulate", *SMALL], ["compare", "mixtral-8x7b", "--devices", "h100"]])
def test_a_preemption_mode_that_does_not_exist_is_one_line_and_exit_1(command):
    result = CliRunner().invoke(cli, [*command, "--preemption", "swap", "--no-progress"])
    assert result.exit_code == 1
    assert result.output == "Error: --preemption 'swap': expected one of none, recompute\n"


def test_recompute_preemption_on_replicas_is_refused_in_one_line():
    result = CliRunner().invoke(cli, ["simulate", *SMALL, "--replicas", "2", "--qps", "1", "--preemption", "recompute"])
    assert result.exit_code == 1
    assert result.output == ("Error: --preemption recompute: a run on replicas (--replicas, --trace-file) reserves "
                             "each request's whole context; recompute preemption is modelled for one replica\n")
