"""topk_gate against numerics.topk: values (stored as fp32) and indices of every token, bit for bit.

Order under test: NaN above +inf, +0 equal to -0, equal values in index order. Stimulus: tokens
of edge values (NaNs, infinities, signed zeros, subnormals), tokens of all-equal logits, tokens
drawn from a pool of a few values (many ties), sorted runs, and random tokens; random idle on the
logit stream and random back-pressure on the results.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from opbsim.isa import numerics
from opbsim.isa.floatbits import f32_bits, f32_from_bits
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


def topk_reference(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(values as stored fp32 words, indices) of numerics.topk over each row of fp32 words."""
    vals, idx = numerics.topk(f32_from_bits(logits), k)
    return f32_bits(numerics.store(vals, DType.FP32)), idx


class TopkTB:
    """Clock, reset, a logit driver, a result monitor, the reference and a checker."""

    def __init__(self, dut, *, idle: float, stall: float, name: str):
        self.dut = dut
        params = hdl_parameters()
        self.e, self.k = params["E"], params["K"]
        self.iw = max(1, (self.e - 1).bit_length())
        rng = rng_for(name)
        self.src = StreamDriver(dut.clk, dut.in_valid, dut.in_ready, {"x": dut.in_logit}, rng, idle)
        self.sink = StreamMonitor(dut.clk, dut.out_valid, dut.out_ready,
                                  {"vals": dut.out_vals, "idx": dut.out_idx}, rng, stall)
        self.name = name

    async def reset(self) -> None:
        await start_clock_and_reset(self.dut)

    async def check(self, tokens: np.ndarray) -> int:
        """Send tokens [T, E] of fp32 words; compare values and indices; returns T."""
        first = len(self.sink.beats)
        self.src.send({"x": int(v)} for v in tokens.ravel())
        await self.sink.wait_for(first + len(tokens), timeout_cycles=20 * tokens.size + 100)
        beats = self.sink.beats[first:]
        mask = (1 << self.iw) - 1
        got_vals = np.array([[(b["vals"] >> (32 * j)) & 0xFFFFFFFF for j in range(self.k)] for b in beats],
                            dtype=np.uint32)
        got_idx = np.array([[(b["idx"] >> (self.iw * j)) & mask for j in range(self.k)] for b in beats])
        ref_vals, ref_idx = topk_reference(tokens, self.k)

        def describe(i: int) -> str:
            return f"token {i // self.k} rank {i % self.k}: logits {[hex(v) for v in tokens[i // self.k]]}"

        Checker(f"{self.name} indices", self.dut._log, describe).check(got_idx, ref_idx, width=8)
        Checker(f"{self.name} values", self.dut._log, describe).check(got_vals, ref_vals)
        return len(tokens)


def edge_tokens(rng: np.random.Generator, e: int) -> np.ndarray:
    """Tokens built from the fp32 edge values: shuffled, all equal, zeros of both signs, NaNs."""
    edges = vectors.F32_EDGES
    tokens = [rng.choice(edges, e) for _ in range(400)]
    tokens += [np.full(e, v, np.uint32) for v in edges]
    zeros = np.array([0x00000000, 0x80000000, 0x00000001, 0x80000001], np.uint32)
    tokens += [rng.choice(zeros, e) for _ in range(100)]
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0x7F800000, 0xFF800000, 0x3F800000], np.uint32)
    tokens += [rng.choice(nans, e) for _ in range(100)]
    ramp = vectors.as_f32_words(np.arange(e, dtype=np.float32))
    tokens += [ramp, ramp[::-1].copy()]
    return np.array(tokens, dtype=np.uint32)


def random_tokens(rng: np.random.Generator, e: int, n: int) -> np.ndarray:
    """Half router-like logits (normal values near 1), a quarter from a pool of 3 values (ties),
    a quarter arbitrary words."""
    normal = vectors.near(rng, vectors.as_f32_words(np.ones(n * e)), 4).reshape(n, e)
    pool = rng.choice(vectors.random_f32(rng, 3), (n, e))
    wild = vectors.random_f32(rng, n * e).reshape(n, e)
    kind = rng.integers(0, 4, n)[:, None]
    return np.where(kind < 2, normal, np.where(kind == 2, pool, wild)).astype(np.uint32)


@cocotb.test()
async def topk_edge_values_ties_signed_zeros_and_nans(dut):
    tb = TopkTB(dut, idle=0.1, stall=0.2, name="edges")
    await tb.reset()
    await tb.check(edge_tokens(np.random.default_rng(cocotb.RANDOM_SEED), tb.e))


@cocotb.test()
async def topk_random_tokens_with_idle_and_backpressure(dut):
    tb = TopkTB(dut, idle=0.2, stall=0.5, name="random")
    await tb.reset()
    tokens = int(os.environ.get("OPBSIM_TOPK_TOKENS", "10000"))
    assert await tb.check(random_tokens(np.random.default_rng(cocotb.RANDOM_SEED + 1), tb.e, tokens)) == tokens


@pytest.mark.rtl
@pytest.mark.parametrize(("experts", "k", "tokens"), [
    (8, 2, 10_000),  # Mixtral: 8 experts, top-2
    (64, 8, 1_500),  # OLMoE: 64 experts, top-8
    (4, 4, 3_000),  # k = E: a full sort
    (6, 1, 3_000),  # top-1, and E not a power of two (the index counter wraps at E - 1)
])
def test_topk_gate_matches_numerics_topk_bit_for_bit(experts, k, tokens):
    run_unit("topk_gate", "tests.rtl.test_topk_gate", {"E": experts, "K": k}, seed=3001 + experts + k,
             extra_env={"OPBSIM_TOPK_TOKENS": str(tokens)})
