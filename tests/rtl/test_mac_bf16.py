"""mac_bf16 against the numerics contract: out = fp32(fp32(a * b) + acc), bit for bit.

The reference is opbsim.isa.numerics (mul, then add, then ``store`` to fp32, which makes every NaN
the canonical 0x7FC00000). Stimulus: the full cross product of the bf16 and fp32 edge cases,
rounding ties (in the normal and the subnormal range), FLT_MAX + ulp/2, and 12,000 random vectors
biased toward overlapping exponents; random idle cycles and random back-pressure throughout.
"""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.isa import numerics
from opbsim.isa.floatbits import bf16_widen, f32_bits, f32_from_bits
from opbsim.isa.types import DType
from tests.rtl import vectors
from tests.rtl.harness import (
    Checker,
    RisingEdge,
    StreamDriver,
    StreamMonitor,
    cocotb,
    get_sim_time,
    hdl_parameters,
    rng_for,
    start_clock_and_reset,
)
from tests.rtl.sim import run_unit

RANDOM_VECTORS = 12_000


def mac_reference(a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """fp32 words of acc + (a * b) by the numerics definition (product rounded, then added)."""
    product = numerics.mul(bf16_widen(a), bf16_widen(b))
    return f32_bits(numerics.store(numerics.add(product, f32_from_bits(acc)), DType.FP32))


class MacTB:
    """Clock, reset, an input driver (a, b, acc), an output monitor, the reference and a checker."""

    def __init__(self, dut, *, idle: float, stall: float, name: str):
        self.dut = dut
        self.stages = hdl_parameters().get("STAGES", 2)
        rng = rng_for(name)
        self.source = StreamDriver(dut.clk, dut.in_valid, dut.in_ready,
                                   {"a": dut.in_a, "b": dut.in_b, "acc": dut.in_acc}, rng, idle)
        self.sink = StreamMonitor(dut.clk, dut.out_valid, dut.out_ready, {"acc": dut.out_acc}, rng, stall)
        self.name = name

    async def reset(self) -> None:
        await start_clock_and_reset(self.dut)

    async def check(self, a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> int:
        """Stream the vectors through the DUT and compare every result; returns the count."""
        first = len(self.sink.beats)
        self.source.send({"a": int(x), "b": int(y), "acc": int(z)} for x, y, z in zip(a, b, acc))
        await self.sink.wait_for(first + a.size, timeout_cycles=20 * a.size + 100)
        got = np.array([beat["acc"] for beat in self.sink.beats[first:]], dtype=np.uint32)
        checker = Checker(self.name, self.dut._log,
                          lambda i: f"a=0x{int(a[i]):04x} b=0x{int(b[i]):04x} acc=0x{int(acc[i]):08x}")
        checker.check(got, mac_reference(a, b, acc))
        return checker.checked


def edge_vectors(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b, acc = np.meshgrid(vectors.BF16_EDGES, vectors.BF16_EDGES, vectors.F32_EDGES, indexing="ij")
    ties = vectors.mac_ties(rng, 1000)
    top = vectors.max_plus_half_ulp()
    return tuple(np.concatenate([grid.ravel(), t, m]) for grid, t, m in zip((a, b, acc), ties, top))


def random_vectors(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a, b = vectors.random_bf16(rng, n), vectors.random_bf16(rng, n)
    product = f32_bits(numerics.mul(bf16_widen(a), bf16_widen(b)))
    overlapping = vectors.near(rng, product, spread=30)
    acc = np.where(rng.integers(0, 3, n) == 0, vectors.random_f32(rng, n), overlapping).astype(np.uint32)
    return a, b, acc


@cocotb.test()
async def mac_edge_cases_and_ties(dut):
    """Every pair of bf16 edge cases against every fp32 edge accumulator, ties, FLT_MAX + ulp/2."""
    tb = MacTB(dut, idle=0.1, stall=0.1, name="edges")
    await tb.reset()
    n = await tb.check(*edge_vectors(np.random.default_rng(cocotb.RANDOM_SEED)))
    assert n > 10_000


@cocotb.test()
async def mac_random_vectors_with_backpressure(dut):
    tb = MacTB(dut, idle=0.3, stall=0.3, name="random")
    await tb.reset()
    assert await tb.check(*random_vectors(np.random.default_rng(cocotb.RANDOM_SEED + 1), RANDOM_VECTORS)) \
        == RANDOM_VECTORS


@cocotb.test()
async def mac_takes_one_vector_per_cycle_with_latency_stages(dut):
    """Never idle, never stalled: results leave back to back, STAGES cycles after their inputs."""
    tb = MacTB(dut, idle=0.0, stall=0.0, name="rate")
    await tb.reset()
    n = 64
    a, b, acc = random_vectors(np.random.default_rng(7), n)
    await RisingEdge(dut.clk)
    start = get_sim_time("ns")
    await tb.check(a, b, acc)
    cycles = round((get_sim_time("ns") - start) / 10)
    # n beats back to back, the last one leaves STAGES cycles later, seen at the next falling edge
    assert cycles <= n + tb.stages + 2, f"{n} vectors took {cycles} cycles"


@pytest.mark.rtl
@pytest.mark.parametrize("stages", [1, 2])
def test_mac_bf16_matches_the_numerics_bit_for_bit(stages):
    run_unit("mac_bf16", "tests.rtl.test_mac_bf16", {"STAGES": stages}, seed=1009 + stages)
