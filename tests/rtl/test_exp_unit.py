"""exp_unit against numerics.exp (the sequence of binary32 steps of opbsim/isa/elementary.py), bit
for bit, stored as fp32.

Stimulus: the fp32 edge cases; the clamp limits and their neighbours; the overflow threshold
(~88.72) and the range where results are subnormal (-87.3 .. -103.97); inputs whose x * log2(e)
lies within a few ulps of a half-integer (where rint's tie rule decides n); subnormal inputs; a
sweep of every 2^-4 step on [-105, 90]; and 12,000 random words. Random idle cycles and
back-pressure throughout.
"""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics
from opbsim.isa.floatbits import f32_bits, f32_from_bits
from opbsim.isa.types import DType
from tests.rtl import vectors
from tests.rtl.harness import (
    CLOCK_NS,
    Checker,
    RisingEdge,
    StreamDriver,
    StreamMonitor,
    cocotb,
    get_sim_time,
    rng_for,
    start_clock_and_reset,
)
from tests.rtl.sim import run_unit

RANDOM_VECTORS = 12_000
STAGES = 13  # 8 + the 5 Horner steps of the definition (exp_unit.sv)


def exp_reference(x: np.ndarray) -> np.ndarray:
    return f32_bits(numerics.store(numerics.exp(f32_from_bits(x)), DType.FP32))


class ExpTB:
    """Clock, reset, an input driver, an output monitor, the reference and a checker."""

    def __init__(self, dut, *, idle: float, stall: float, name: str):
        self.dut = dut
        rng = rng_for(name)
        self.source = StreamDriver(dut.clk, dut.in_valid, dut.in_ready, {"x": dut.in_x}, rng, idle)
        self.sink = StreamMonitor(dut.clk, dut.out_valid, dut.out_ready, {"y": dut.out_y}, rng, stall)
        self.name = name

    async def reset(self) -> None:
        await start_clock_and_reset(self.dut)

    async def check(self, x: np.ndarray) -> int:
        first = len(self.sink.beats)
        self.source.send({"x": int(v)} for v in x)
        await self.sink.wait_for(first + x.size, timeout_cycles=20 * x.size + 200)
        got = np.array([b["y"] for b in self.sink.beats[first:]], dtype=np.uint32)
        checker = Checker(self.name, self.dut._log, lambda i: f"x=0x{int(x[i]):08x} ({f32_from_bits(x[i])!r})")
        checker.check(got, exp_reference(x))
        return checker.checked


def _around(values, ulps: int = 3) -> np.ndarray:
    """The fp32 words within ``ulps`` of each value (both directions)."""
    w = vectors.as_f32_words(values).astype(np.int64)
    return np.concatenate([w + d for d in range(-ulps, ulps + 1)]).astype(np.uint32)


def edge_inputs() -> np.ndarray:
    ln2 = np.log(2.0)
    half_integers = (np.arange(-150, 129) + 0.5) * ln2  # x * log2(e) near k + 1/2: rint ties
    return np.concatenate([
        vectors.F32_EDGES,
        _around([-104.0, 89.0, 88.72283935546875, -87.33654022216797, -103.97, -103.2789, 0.0], 8),
        _around(half_integers, 2),
        _around(np.arange(-150, 129) * ln2, 1),
        np.array([0x00000001, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0x33800000, 0xB3800000], np.uint32),
        vectors.as_f32_words(np.arange(-105.0, 90.0, 0.0625)),
    ])


def random_inputs(rng: np.random.Generator, n: int) -> np.ndarray:
    uniform_bits = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    in_range = vectors.as_f32_words(rng.uniform(-106.0, 91.0, n))
    small = vectors.as_f32_words(rng.uniform(-1.0, 1.0, n) * np.exp2(rng.integers(-30, 0, n)))
    kind = rng.integers(0, 3, n)
    return np.where(kind == 0, uniform_bits, np.where(kind == 1, in_range, small)).astype(np.uint32)


@cocotb.test()
async def exp_edge_cases_clamps_ties_and_subnormal_results(dut):
    tb = ExpTB(dut, idle=0.1, stall=0.2, name="edges")
    await tb.reset()
    await tb.check(edge_inputs())


@cocotb.test()
async def exp_random_inputs_with_idle_and_backpressure(dut):
    tb = ExpTB(dut, idle=0.3, stall=0.3, name="random")
    await tb.reset()
    assert await tb.check(random_inputs(np.random.default_rng(cocotb.RANDOM_SEED), RANDOM_VECTORS)) == RANDOM_VECTORS


@cocotb.test()
async def exp_takes_one_input_per_cycle_after_its_pipeline_latency(dut):
    tb = ExpTB(dut, idle=0.0, stall=0.0, name="rate")
    await tb.reset()
    await RisingEdge(dut.clk)
    start = get_sim_time("ns")
    n = 200
    await tb.check(random_inputs(np.random.default_rng(5), n))
    cycles = round((get_sim_time("ns") - start) / CLOCK_NS)
    assert cycles <= n + STAGES + 2, f"{n} inputs took {cycles} cycles"


@pytest.mark.rtl
def test_exp_unit_matches_numerics_exp_bit_for_bit():
    run_unit("exp_unit", "tests.rtl.test_exp_unit", {}, seed=4001)
