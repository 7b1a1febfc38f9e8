"""``opbsim validate --gpu`` and ``opbsim calibrate --gpu``: one line and exit status 1 without a
GPU; with the host build of the kernels standing in for a GPU, the reports and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

import opbsim.reference.pycuda_runner as runner
import opbsim.reference.timing as timing
from opbsim.cli import cli
from opbsim.reference.backends import unavailable_reason
from opbsim.reference.pycuda_runner import GpuOps
from tests.gpu.host_device import HostDevice

NO_GPU = unavailable_reason()
needs_no_gpu = pytest.mark.skipif(NO_GPU is None, reason="a GPU is present: the no-GPU messages cannot be seen")
SMALL = ["--layer", "gqa-decode", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--head-dim", "16",
         "--ctx", "3,9"]


def _invoke(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@needs_no_gpu
@pytest.mark.parametrize("args, command", [(["validate", "--gpu"], "validate --gpu"),
                                           (["validate", "--gpu", "--backend", "cupy"], "validate --gpu"),
                                           (["calibrate", "--gpu"], "calibrate --gpu")])
def test_without_a_gpu_the_gpu_commands_say_why_in_one_line_and_exit_1(args, command):
    result = _invoke(args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Error: {command}: no GPU to run on: ")


def test_calibrate_without_gpu_flag_asks_for_it():
    result = _invoke(["calibrate"])
    assert (result.exit_code, result.stderr) == (1, "Error: calibrate measures on a GPU: pass --gpu\n")


class _OffByOneUlpAdd(GpuOps):
    """Adds one to the first result bit pattern of every ``add``: a kernel bug to be caught."""

    def binary(self, op, a, b, out_kind):
        y = super().binary(op, a, b, out_kind)
        if op != "add":
            return y
        host = self.download(y)
        host.view(np.uint16 if host.itemsize == 2 else np.uint32).reshape(-1)[0] += 1
        return self.upload(host)


def test_validate_gpu_runs_every_kernel_check_and_the_layer_and_passes_on_exact_kernels(host_library, monkeypatch):
    monkeypatch.setattr(runner, "open_gpu", lambda prefer=None: GpuOps(HostDevice(host_library)))
    result = _invoke(["validate", "--gpu", *SMALL])
    assert result.exit_code == 0, result.output
    out = result.stdout.splitlines()
    assert out[0] == "GPU: host emulation (no GPU) (host, ?, driver None)"
    assert "  gemm 8x300x129 b transposed: bit-exact (1032/1032)" in out
    assert "  gqa-decode:kc1: bit-exact (32/32)" in out
    assert out[-1] == "all GPU results bit-exact"


def test_a_wrong_bit_is_reported_with_its_coordinates_and_both_values_and_exit_1(host_library, monkeypatch):
    monkeypatch.setattr(runner, "open_gpu", lambda prefer=None: _OffByOneUlpAdd(HostDevice(host_library)))
    result = _invoke(["validate", "--gpu", "--json", *SMALL])
    assert result.exit_code == 1
    assert result.stderr.startswith(
        "Error: GPU results differ from numerics.py / the numerics definition in add fp32->fp32")
    report = json.loads(result.stdout)
    y = next(o for o in report["layers"][0]["outputs"] if o["name"] == "gqa-decode:y")
    assert (y["bit_exact"], y["bit_equal"], y["values"]) == (False, 127, 128)
    first = y["mismatches"][0]
    assert first["index"] == [0, 0] and first["got_bits"] == first["want_bits"] + 1


def test_calibrate_writes_the_table_plot_and_numbers(host_library, monkeypatch, tmp_path):
    monkeypatch.setattr(runner, "open_gpu", lambda prefer=None: GpuOps(HostDevice(host_library)))
    monkeypatch.setattr(timing.Bench.__init__, "__defaults__", (1, 10.0))  # 1 MiB flush: a host run
    result = _invoke(["calibrate", "--gpu", "--quick", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["calibration.json", "calibration.md", "calibration.png"]
    md = (tmp_path / "calibration.md").read_text()
    assert "| model `h100` | 989.4 | 3352 | 295 |" in md
    points = json.loads((tmp_path / "calibration.json").read_text())["points"]
    assert [p["tokens"] for p in points if p["op"] == "gemm"] == [1, 8, 64]
    assert all(p["model_s"] > 0 and p["measured_s"] > 0 for p in points)
