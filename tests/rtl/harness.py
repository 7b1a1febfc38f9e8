"""Testbench parts shared by the RTL units: clock and reset, valid/ready drivers and monitors with
random idle and back-pressure, and a bit-exact checker.

Timing convention (every part follows it, so parts compose): inputs change just after a rising
clock edge; a handshake is sampled at the falling edge, when every combinational ready/valid has
settled, and takes effect at the next rising edge.
"""

from __future__ import annotations

import os
import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pytest

# Test modules import cocotb through here, so without the [rtl] extra they skip with this reason.
cocotb = pytest.importorskip("cocotb", reason="RTL toolchain missing: cocotb is not installed: pip install -e '.[rtl]'")

from cocotb.clock import Clock  # noqa: E402
from cocotb.simtime import get_sim_time  # noqa: E402
from cocotb.triggers import Event, FallingEdge, RisingEdge, with_timeout  # noqa: E402

__all__ = ["CLOCK_NS", "Checker", "RisingEdge", "StreamDriver", "StreamMonitor", "cocotb", "get_sim_time",
           "hdl_parameters", "rng_for", "start_clock_and_reset"]

CLOCK_NS = 10


def hdl_parameters() -> dict[str, int]:
    """The HDL parameters this simulation was built with (set by tests/rtl/sim.py)."""
    text = os.environ.get("OPBSIM_RTL_PARAMS", "")
    return {k: int(v) for k, v in (item.split("=") for item in text.split(",") if item)}


def rng_for(name: str) -> random.Random:
    """A generator seeded from cocotb's random seed (reported in the log) and ``name``."""
    return random.Random(f"{cocotb.RANDOM_SEED}:{name}")


async def start_clock_and_reset(dut, cycles: int = 3) -> None:
    """Start ``dut.clk`` and hold the synchronous active-low ``dut.rst_n`` for ``cycles`` edges."""
    Clock(dut.clk, CLOCK_NS, unit="ns").start()
    dut.rst_n.value = 0
    for _ in range(cycles):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1


class StreamDriver:
    """Drives one valid/ready input channel from a queue of beats.

    ``fields`` maps beat keys to DUT signals. Before each beat the channel idles for a cycle with
    probability ``idle`` (again and again, so gaps are geometric); a presented beat holds its data
    and valid until the DUT takes it, as the protocol requires.
    """

    def __init__(self, clk, valid, ready, fields: Mapping[str, object], rng: random.Random, idle: float = 0.0):
        self.clk, self.valid, self.ready, self.fields = clk, valid, ready, dict(fields)
        self.rng, self.idle = rng, idle
        self.queue: deque[Mapping[str, int]] = deque()
        self.sent = 0
        self.valid.value = 0
        cocotb.start_soon(self._run())

    def send(self, beats: Iterable[Mapping[str, int]]) -> None:
        self.queue.extend(beats)

    async def _run(self) -> None:
        presented = False
        while True:
            await RisingEdge(self.clk)
            if not presented:
                if self.queue and self.rng.random() >= self.idle:
                    beat = self.queue.popleft()
                    for key, handle in self.fields.items():
                        handle.value = beat[key]
                    presented = True
                self.valid.value = int(presented)
            await FallingEdge(self.clk)
            if presented and self.ready.value:
                presented = False
                self.sent += 1


class StreamMonitor:
    """Records every beat of one valid/ready output channel; drives its ready.

    Each cycle ready is low with probability ``stall`` (back-pressure). ``beats`` holds the
    recorded beats as dicts of ints; ``wait_for(n)`` returns once n beats have arrived.
    """

    def __init__(self, clk, valid, ready, fields: Mapping[str, object], rng: random.Random, stall: float = 0.0):
        self.clk, self.valid, self.ready, self.fields = clk, valid, ready, dict(fields)
        self.rng, self.stall = rng, stall
        self.beats: list[dict[str, int]] = []
        self._want = 0
        self._arrived = Event()
        self.ready.value = 0
        cocotb.start_soon(self._run())

    async def _run(self) -> None:
        while True:
            await RisingEdge(self.clk)
            self.ready.value = int(self.rng.random() >= self.stall)
            await FallingEdge(self.clk)
            if self.valid.value and self.ready.value:
                self.beats.append({key: int(h.value) for key, h in self.fields.items()})
                if len(self.beats) >= self._want:
                    self._arrived.set()

    async def wait_for(self, n: int, timeout_cycles: int) -> None:
        self._want = n
        if len(self.beats) < n:
            self._arrived.clear()
            await with_timeout(self._arrived.wait(), timeout_cycles * CLOCK_NS, "ns")


class Checker:
    """Compares DUT words with reference words bit for bit and reports the first mismatches.

    ``describe(i)`` renders the stimulus of vector i for the report.
    """

    def __init__(self, name: str, log, describe: Callable[[int], str]):
        self.name, self.log, self.describe = name, log, describe
        self.checked = 0

    def check(self, got: np.ndarray, expected: np.ndarray, width: int = 32) -> None:
        got = np.asarray(got, dtype=np.uint64)
        expected = np.asarray(expected, dtype=np.uint64)
        assert got.shape == expected.shape, f"{self.name}: {got.shape} results for {expected.shape} expected"
        bad = np.flatnonzero(got != expected)
        self.checked += got.size
        digits = width // 4
        for i in bad[:8]:
            self.log.error("%s #%d: got 0x%0*x, expected 0x%0*x for %s", self.name, i, digits, int(got.flat[i]),
                           digits, int(expected.flat[i]), self.describe(int(i)))
        assert bad.size == 0, f"{self.name}: {bad.size} of {got.size} results differ from the reference"
        self.log.info("%s: %d results agree bit for bit", self.name, got.size)
