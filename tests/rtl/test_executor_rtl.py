"""The functional executor with its PIM GEMMs on the RTL Logic-PIM unit (`opbsim run --rtl`)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from tests.rtl.sim import SIM_BUILD, require_toolchain
from tests.unit.cli.test_cli_run import small_mixtral


@pytest.mark.rtl
def test_a_compiled_moe_layer_with_its_pim_gemms_on_the_rtl_unit_is_still_bit_exact(tmp_path, monkeypatch):
    require_toolchain()
    pytest.importorskip("pyverilator", reason="RTL toolchain missing: pyverilator-mm is not installed")
    monkeypatch.setenv("OPBSIM_RTL_CACHE", str(SIM_BUILD / "pyverilator"))
    result = CliRunner().invoke(cli, ["run", small_mixtral(tmp_path), "--layer", "1", "--batch", "5", "--ctx", "9",
                                      "--rtl", "8", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["bit_exact"] is True
    assert out["rtl_gemm_tiles"] > 0 and out["rtl_cycles"] > 0  # decode attention and experts ran on the RTL
