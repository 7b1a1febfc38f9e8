"""The emulator's Logic-PIM timing model against the RTL GEMV unit, tile by tile."""

from __future__ import annotations

import math

import pytest

from opbsim.emulator.pim_tile import engine_tile_cycles
from opbsim.rtl_models.cosim import PIPELINE_LATENCY, rtl_cycles
from tests.rtl.sim import SIM_BUILD, require_toolchain


def test_the_engine_counts_a_modules_macs_and_weight_stream_as_the_roofline_of_the_tile():
    assert engine_tile_cycles(8, 64, 256) == pytest.approx(256 * 64 / 8)  # compute: rows x k / lanes
    assert engine_tile_cycles(16, 256, 64, 20.0) == pytest.approx(64 * 256 * 2 / 20)  # weight bytes / (B/cycle)


@pytest.mark.rtl
@pytest.mark.parametrize("lanes,k,rows,bpc", [(8, 64, 256, None), (16, 128, 96, None), (16, 256, 64, 20.0),
                                             (4, 33, 40, 6.0)])
def test_the_rtl_unit_takes_the_engines_cycles_plus_its_pipeline(monkeypatch, lanes, k, rows, bpc):
    require_toolchain()
    pytest.importorskip("pyverilator", reason="RTL toolchain missing: pyverilator-mm is not installed")
    monkeypatch.setenv("OPBSIM_RTL_CACHE", str(SIM_BUILD / "pyverilator"))
    cycles, _, _ = rtl_cycles(lanes, k, rows, weight_bytes_per_cycle=bpc, seed=1)
    engine = engine_tile_cycles(lanes, k, rows, bpc)
    partial_pass = math.ceil(rows / lanes) * lanes - rows  # idle lanes of a last, partial pass
    slack = PIPELINE_LATENCY + (partial_pass * k / lanes if bpc is None else 2)
    assert engine <= cycles <= engine + slack
