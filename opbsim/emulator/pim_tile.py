"""The Logic-PIM timing model's cycles for one GEMV tile, for comparison with the RTL unit.

The device model of Duplex sees Logic-PIM as throughput (matrix TFLOPS) and bandwidth (the
internal channel). One GEMM module with ``lanes`` MACs at the Logic-PIM clock and a weight stream
of ``weight_bytes_per_cycle`` is that model at the scale of the RTL unit: the same engine times a
one-instruction program on it, and the time is converted to cycles of the clock.
"""

from __future__ import annotations

from dataclasses import replace

from opbsim.emulator.engine import run
from opbsim.hardware import get_device
from opbsim.hardware.spec import Channel
from opbsim.isa.program import Instruction, Program
from opbsim.isa.types import Descriptor, DType, Space, Unit

__all__ = ["LOGIC_PIM_CLOCK_MHz", "engine_tile_cycles"]

LOGIC_PIM_CLOCK_MHz = 650.0  # [D]: tCCD_S = 1.5 ns


def engine_tile_cycles(lanes: int, k: int, rows: int, weight_bytes_per_cycle: float | None = None) -> float:
    """Cycles the engine predicts for y[rows] = W[rows, k] x[k] on one module of ``lanes`` MACs
    (weights streamed from HBM; x and y in the module's buffers; no launch cost)."""
    clock_Hz = LOGIC_PIM_CLOCK_MHz * 1e6
    bytes_per_cycle = weight_bytes_per_cycle if weight_bytes_per_cycle is not None else 2 * lanes
    base = get_device("duplex")
    module = replace(
        base,
        units=tuple(replace(u, matrix_TFLOPS=2 * lanes * clock_Hz / 1e12, issue_ns=0.0) if u.unit is Unit.PIM else u
                    for u in base.units),
        channels=tuple(Channel(name=c.name, bw_GBps=bytes_per_cycle * clock_Hz / 1e9)
                       if c.name in base.channels_to(Space.HBM, pim=True) else c for c in base.channels),
    )
    descs = (
        Descriptor("x", Space.PIMBUF, 0, DType.BF16, (1, k), (k, 1)),
        Descriptor("w", Space.HBM, 0, DType.BF16, (k, rows), (1, k)),  # W [rows, k] read transposed
        Descriptor("y", Space.PIMBUF, 2 * k + 64, DType.FP32, (1, rows), (rows, 1)),
    )
    program = Program(descs, (Instruction("gemm", Unit.PIM, (2, 0, 1)), Instruction("halt", Unit.CTRL, ())))
    return run(program, module).time_s * clock_Hz
