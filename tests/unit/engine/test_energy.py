"""Energy by mechanism: rows opened, column and data-path bits, static power over time, links."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.emulator.access import Stream, row_stream
from opbsim.emulator.energy import COMPONENTS, EnergyParts, static_energy, work_energy
from opbsim.emulator.engine import run
from opbsim.emulator.serving import ServingConfig, simulate
from opbsim.emulator.work import Work, by_space, work_of
from opbsim.hardware import get_device
from opbsim.hardware.collectives import Collective, candidates, plan
from opbsim.isa import Space, Unit, assemble
from opbsim.workloads import Request, Scenario
from opbsim.workloads.scenarios import Loop

from ..serving.helpers import TINY_DENSE, ScriptedTimer, cluster

H100 = get_device("h100")
ROW_B = 1024  # an HBM pseudo-channel row
ACT_J = 909e-12  # one row activation [FG] via [LS]


def prog(text: str):
    return assemble(text)


def test_the_components_of_a_run_add_up_to_its_energy():
    stats = run(prog(".desc w hbm 0 bf16 [512, 512]\n.desc x sram 0 bf16 [1, 512]\n.desc y sram 0x1000 fp32 [1, 512]\n"
                     "gemm.xpu y, x, w\n"), H100)
    assert set(stats.energy.items()) == set(COMPONENTS)
    assert stats.energy_J == pytest.approx(sum(stats.energy.items().values()), rel=1e-15)
    assert sum(e for _, e in stats.energy_J_by_group) == pytest.approx(stats.energy.dynamic_J, rel=1e-12)


@pytest.mark.parametrize("n_rows", [1, 3, 64])
def test_a_sequential_stream_of_n_rows_charges_n_activations(n_rows):
    # w holds n_rows x 512 bf16 = n_rows x 1 KiB, contiguous: the copy streams it once, opening each
    # 1 KiB row once (a row per row_B bytes, not per 32-byte burst); the SRAM destination opens none.
    text = f".desc w hbm 0 bf16 [{n_rows}, 512]\n.desc s sram 0 bf16 [{n_rows}, 512]\ncopy.dma s, w\n"
    stats = run(prog(text), H100)
    assert stats.energy.dram_activation == pytest.approx(n_rows * ACT_J)
    bits = n_rows * ROW_B * 8
    assert stats.energy.dram_column == pytest.approx(bits * 187 / 256 * 1e-12)  # [LS] 0.187 nJ per 32 B
    assert stats.energy.dram_datapath == pytest.approx(bits * (891 - 187) / 256 * 1e-12)  # the rest of the xPU's


@pytest.mark.parametrize("r", [1, 5, 40])
def test_a_gather_of_r_random_rows_charges_r_activations(r):
    # r rows of 512 bf16 (1 KiB each) at indexed addresses of a 4096-row table: each row touched is
    # opened once, and no two share a DRAM row, so r activations; the indices and the destination
    # lie in SRAM (no rows). A sequential read of the same r KiB would also open r rows; a gather of
    # r half-rows (512 B) still opens r, where a sequential read of them would open ceil(r / 2).
    text = (f".desc t hbm 0 bf16 [4096, 512]\n.desc i sram 0 i32 [{r}]\n.desc d sram 0x1000 bf16 [{r}, 512]\n"
            "gather.xpu d, t, i\n")
    stats = run(prog(text), H100)
    assert stats.energy.dram_activation == pytest.approx(r * ACT_J)
    half = (f".desc t hbm 0 bf16 [8192, 256]\n.desc i sram 0 i32 [{r}]\n.desc d sram 0x1000 bf16 [{r}, 256]\n"
            "gather.xpu d, t, i\n")
    assert run(prog(half), H100).energy.dram_activation == pytest.approx(r * ACT_J)
    assert Stream(Space.HBM, r * 512, False, r * 512).rows(ROW_B) == math.ceil(r / 2)
    assert row_stream(Space.HBM, r, 512, write=False).rows(ROW_B) == r


def test_a_strided_view_opens_the_rows_its_span_covers():
    # one 256-byte run every 512 bytes: two runs share each 1 KiB row, so 64 runs open 32 rows;
    # one 256-byte run every 4 KiB: every run opens a row of its own
    assert Stream(Space.HBM, 64 * 256, False, 256, ((64, 512),)).rows(ROW_B) == 32
    assert Stream(Space.HBM, 64 * 256, False, 256, ((64, 4096),)).rows(ROW_B) == 64


def test_a_kv_cache_store_is_charged_as_writes():
    text = (".desc k hbm 0 bf16 [1024, 512]\n.desc n sram 0 bf16 [4, 512]\n.desc i sram 0x1000 i32 [4]\n"
            "scatter.xpu k, n, i\n")
    work = work_of(prog(text), prog(text).instructions[0])
    hbm = [s for s in work.streams if s.space is Space.HBM]
    assert [s.write for s in hbm] == [True] and hbm[0].rows(ROW_B) == 4  # four new tokens' rows, written
    assert by_space(work.streams) == work.bytes_by_space


def test_doubling_simulated_time_at_zero_work_doubles_static_energy():
    # Two 1-token requests, open loop: the first finishes at 1 s (one 1 s stage), the second arrives at
    # 1 + idle s; while nothing runs the devices draw their static power and do no work.
    def static_mJ(idle_s: float) -> float:
        reqs = (Request(0, 4, 1, 0.0), Request(1, 4, 1, 1.0 + idle_s))
        cl = cluster()
        result = simulate(TINY_DENSE, cl, Scenario(Loop.OPEN, reqs, seed=0, qps=1.0), ServingConfig(batch=1),
                          timer=ScriptedTimer(TINY_DENSE, cl))
        return dict(result.energy_breakdown_mJ_per_token)["static"]

    one, two = static_mJ(5.0), static_mJ(10.0)
    assert one == pytest.approx(H100.static_W * 5.0 / 2 * 1e3)  # 5 s idle on one device, over 2 tokens
    assert two == pytest.approx(2 * one)
    assert static_energy(H100, 2.0).static == pytest.approx(2 * static_energy(H100, 1.0).static)


@settings(max_examples=30, deadline=None)
@given(k=st.sampled_from([256, 1024, 4096]), n=st.sampled_from([128, 512, 3584]), m=st.integers(1, 8),
       device=st.sampled_from(["duplex", "bankgroup-pim", "bank-pim"]))
def test_moving_a_gemv_from_the_xpu_to_logic_pim_never_increases_dram_energy(k, n, m, device):
    spec = get_device(device)
    decl = f".desc w hbm 0 bf16 [{k}, {n}]\n"
    xpu = run(prog(decl + f".desc x sram 0 bf16 [{m}, {k}]\n.desc y sram 0x100000 fp32 [{m}, {n}]\n"
                          "gemm.xpu y, x, w\n"), spec).energy
    pim = run(prog(decl + f".desc x pimbuf 0 bf16 [{m}, {k}]\n.desc y pimbuf 0x100000 fp32 [{m}, {n}]\n"
                          "gemm.pim y, x, w\n"), spec).energy
    dram = lambda e: e.dram_activation + e.dram_column + e.dram_datapath  # noqa: E731
    assert dram(pim) <= dram(xpu)
    assert pim.dram_activation == xpu.dram_activation  # the same rows opened: only the path differs


def test_a_collective_charges_each_byte_it_sends_at_its_ports_energy():
    # ring all-reduce of S bytes over 4 devices of one node: each device sends 2 (n - 1) / n S over NVLink
    work = Work(collective=(Collective.ALLREDUCE, 1 << 20, 4))
    p = plan(H100.interconnect, Collective.ALLREDUCE, 1 << 20, 4)
    joules = work_energy(H100, Unit.XPU, work).interconnect
    assert joules == pytest.approx(8 * p.up_B * H100.interconnect.scale_up.energy_pJ_per_bit * 1e-12)
    ring = next(c for c in candidates(H100.interconnect, Collective.ALLREDUCE, 1 << 20, 4)
                if c.algorithm.value == "ring")
    assert ring.up_B == pytest.approx(2 * 3 / 4 * (1 << 20)) and ring.out_B == 0


def test_energy_parts_add_and_scale_component_by_component():
    a, b = EnergyParts(compute=1.0, static=2.0), EnergyParts(compute=0.5, interconnect=1.0)
    assert (a + b).items() == {**EnergyParts().items(), "compute": 1.5, "static": 2.0, "interconnect": 1.0}
    assert a.scaled(2).total_J == 6.0 and a.dynamic_J == 1.0
