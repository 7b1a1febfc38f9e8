"""pim_gemv against numerics.gemm: every lane's output bit for bit, passes of any length, both ops.

One pass of the unit is a GEMV tile y[n] = sum over k in order of x[k] * W[n][k], n < LANES,
starting from +0 (gemm) or from given fp32 partial sums (gemm_acc). The reference is
opbsim.isa.numerics.gemm on the same tile, stored as fp32. Stimulus: every bf16 edge case times
every bf16 edge weight against every fp32 edge partial sum (one-k passes), long sums that cancel,
underflow into subnormals or overflow, and random passes; random idle on the command, activation
and weight channels independently, and random back-pressure on the results.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

from opbsim.isa import numerics
from opbsim.isa.floatbits import bf16_widen, f32_bits, f32_from_bits
from opbsim.isa.spec import spec_of
from opbsim.isa.types import DType
from tests.rtl import vectors
from tests.rtl.harness import (
    Checker,
    StreamDriver,
    StreamMonitor,
    cocotb,
    hdl_parameters,
    rng_for,
    start_clock_and_reset,
)
from tests.rtl.sim import run_unit

OP_GEMM = spec_of("gemm").opcode
OP_GEMM_ACC = spec_of("gemm_acc").opcode
RANDOM_OUTPUTS = 10_000


@dataclass(frozen=True)
class Pass:
    """One tile: op, init (fp32 words, LANES; used by gemm_acc), x (bf16 words, K), w (bf16, LANES x K)."""

    op: int
    init: np.ndarray
    x: np.ndarray
    w: np.ndarray


def gemv_reference(p: Pass) -> np.ndarray:
    """The LANES fp32 words numerics.gemm gives for the pass (a [1, K] times W^T [K, LANES])."""
    acc = f32_from_bits(p.init)[None, :] if p.op == OP_GEMM_ACC else None
    y = numerics.gemm(bf16_widen(p.x)[None, :], bf16_widen(p.w).T, acc)
    return f32_bits(numerics.store(y, DType.FP32))[0]


def _pack(words: np.ndarray, bits: int) -> int:
    return sum(int(v) << (bits * i) for i, v in enumerate(words))


def _unpack(value: int, bits: int, n: int) -> list[int]:
    mask = (1 << bits) - 1
    return [(value >> (bits * i)) & mask for i in range(n)]


class GemvTB:
    """Clock, reset, drivers for cmd / act / w, a monitor on out, the reference and a checker."""

    def __init__(self, dut, *, idle: float, stall: float, name: str):
        self.dut = dut
        self.lanes = hdl_parameters()["LANES"]
        rng = rng_for(name)
        self.cmd = StreamDriver(dut.clk, dut.cmd_valid, dut.cmd_ready, {"op": dut.cmd_op, "acc": dut.cmd_acc},
                                rng, idle)
        self.act = StreamDriver(dut.clk, dut.act_valid, dut.act_ready, {"x": dut.act_data}, rng, idle)
        self.w = StreamDriver(dut.clk, dut.w_valid, dut.w_ready, {"w": dut.w_data, "last": dut.w_last}, rng, idle)
        self.out = StreamMonitor(dut.clk, dut.out_valid, dut.out_ready, {"y": dut.out_data}, rng, stall)
        self.name = name

    async def reset(self) -> None:
        await start_clock_and_reset(self.dut)

    def send(self, p: Pass) -> None:
        k = p.x.size
        self.cmd.send([{"op": p.op, "acc": _pack(p.init, 32)}])
        self.act.send({"x": int(v)} for v in p.x)
        self.w.send({"w": _pack(p.w[:, i], 16), "last": int(i == k - 1)} for i in range(k))

    async def check(self, passes: list[Pass]) -> int:
        """Run the passes and compare every lane of every result; returns the number of outputs."""
        first = len(self.out.beats)
        for p in passes:
            self.send(p)
        cycles = sum(p.x.size for p in passes)
        await self.out.wait_for(first + len(passes), timeout_cycles=20 * cycles + 100 * len(passes))
        got = np.array([_unpack(b["y"], 32, self.lanes) for b in self.out.beats[first:]], dtype=np.uint32)
        expected = np.array([gemv_reference(p) for p in passes], dtype=np.uint32)

        def describe(i: int) -> str:
            p = passes[i // self.lanes]
            lane = i % self.lanes
            return (f"pass {i // self.lanes} lane {lane}: op 0x{p.op:02x} init 0x{int(p.init[lane]):08x} "
                    f"x {[hex(v) for v in p.x[:8]]} w {[hex(v) for v in p.w[lane, :8]]} (K={p.x.size})")

        checker = Checker(self.name, self.dut._log, describe)
        checker.check(got, expected)
        return checker.checked


def edge_passes(lanes: int) -> list[Pass]:
    """One-k gemm_acc passes covering x in BF16_EDGES x w in BF16_EDGES x init in F32_EDGES."""
    passes = []
    w_grid, init_grid = np.meshgrid(vectors.BF16_EDGES, vectors.F32_EDGES, indexing="ij")
    w_all, init_all = w_grid.ravel(), init_grid.ravel()
    pad = (-w_all.size) % lanes
    w_all = np.concatenate([w_all, np.zeros(pad, np.uint16)])
    init_all = np.concatenate([init_all, np.zeros(pad, np.uint32)])
    for x in vectors.BF16_EDGES:
        for start in range(0, w_all.size, lanes):
            w = w_all[start:start + lanes].reshape(lanes, 1)
            passes.append(Pass(OP_GEMM_ACC, init_all[start:start + lanes], np.array([x], np.uint16), w))
    return passes


def long_passes(rng: np.random.Generator, lanes: int) -> list[Pass]:
    """Long sums: cancelling ordinary values, products in the subnormal range, overflow mid-sum."""
    passes = []
    for k in (64, 200):
        passes.append(Pass(OP_GEMM, np.zeros(lanes, np.uint32), vectors.ordinary_bf16(rng, k, 2),
                           vectors.ordinary_bf16(rng, lanes * k, 2).reshape(lanes, k)))
    tiny = (rng.integers(0, 2, (lanes + 1, 48)) << 15) | (rng.integers(50, 72, (lanes + 1, 48)) << 7) \
        | rng.integers(0, 128, (lanes + 1, 48))
    passes.append(Pass(OP_GEMM, np.zeros(lanes, np.uint32), tiny[0].astype(np.uint16), tiny[1:].astype(np.uint16)))
    huge = (rng.integers(0, 2, (lanes + 1, 16)) << 15) | (rng.integers(185, 200, (lanes + 1, 16)) << 7) \
        | rng.integers(0, 128, (lanes + 1, 16))
    passes.append(Pass(OP_GEMM_ACC, vectors.random_f32(rng, lanes), huge[0].astype(np.uint16),
                       huge[1:].astype(np.uint16)))
    return passes


def random_passes(rng: np.random.Generator, lanes: int, outputs: int) -> list[Pass]:
    passes = []
    for _ in range(-(-outputs // lanes)):
        k = int(rng.integers(1, 25)) if rng.random() < 0.9 else int(rng.integers(25, 81))
        wild = rng.random() < 0.25
        draw = vectors.random_bf16 if wild else vectors.ordinary_bf16
        x, w = draw(rng, k), draw(rng, lanes * k).reshape(lanes, k)
        op = OP_GEMM_ACC if rng.random() < 0.5 else OP_GEMM
        init = vectors.random_f32(rng, lanes) if wild else vectors.near(rng, vectors.as_f32_words(np.ones(lanes)), 6)
        passes.append(Pass(op, init, x, w))
    return passes


@cocotb.test()
async def gemv_edge_cases_through_every_lane(dut):
    tb = GemvTB(dut, idle=0.1, stall=0.1, name="edges")
    await tb.reset()
    assert await tb.check(edge_passes(tb.lanes)) >= vectors.BF16_EDGES.size ** 2 * vectors.F32_EDGES.size


@cocotb.test()
async def gemv_long_sums_cancel_underflow_and_overflow_in_k_order(dut):
    tb = GemvTB(dut, idle=0.2, stall=0.3, name="long")
    await tb.reset()
    await tb.check(long_passes(np.random.default_rng(cocotb.RANDOM_SEED), tb.lanes))


@cocotb.test()
async def gemv_random_passes_with_idle_and_backpressure(dut):
    tb = GemvTB(dut, idle=0.25, stall=0.4, name="random")
    await tb.reset()
    outputs = int(os.environ.get("OPBSIM_GEMV_OUTPUTS", RANDOM_OUTPUTS))
    passes = random_passes(np.random.default_rng(cocotb.RANDOM_SEED + 1), tb.lanes, outputs)
    assert await tb.check(passes) >= outputs


@pytest.mark.rtl
@pytest.mark.parametrize(("lanes", "outputs"), [
    (4, RANDOM_OUTPUTS),
    (16, RANDOM_OUTPUTS),
    (1, 2_500),  # the one-lane corner: one output per pass makes every vector a whole pass
])
def test_pim_gemv_matches_numerics_gemm_bit_for_bit(lanes, outputs):
    run_unit("pim_gemv", "tests.rtl.test_pim_gemv", {"LANES": lanes}, seed=2003 + lanes,
             extra_env={"OPBSIM_GEMV_OUTPUTS": str(outputs)})
