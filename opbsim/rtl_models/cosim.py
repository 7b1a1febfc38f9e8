"""GEMV tiles through the pim_gemv RTL (pyverilator), with its fp32 outputs and cycle count, and
the analytic cycle model of the unit that a Logic-PIM timing model uses.

A tile is y[m] = sum over k in order of x[k] * W[m, k] for m < rows (bf16 inputs, fp32 sums;
starting from +0, or from given fp32 partial sums as the ISA's gemm_acc), which is
``opbsim.isa.numerics.gemm(x[None, :], W.T, acc)`` bit for bit. The unit computes ``lanes`` rows
per pass, one k per cycle; a tile takes ceil(rows / lanes) passes, streamed back to back.

Cycle count: the clock edges from the one that takes the tile's first k beat to the one that
takes its last result, inclusive, with the results always accepted. The host streams one weight
beat (``lanes`` bf16 words) per cycle, or as ``weight_bytes_per_cycle`` allows (a token bucket
that models the DRAM bandwidth feeding the unit).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from opbsim.errors import InputError
from opbsim.isa.spec import Opcode
from opbsim.rtl_models.build import build_model

__all__ = ["PIPELINE_LATENCY", "GemvRun", "PimGemv", "model_cycles", "pim_gemv", "rtl_cycles"]

PIPELINE_LATENCY = 3  # pim_gemv's operand, product and accumulator/output registers
_OP_GEMM = Opcode.GEMM
_OP_GEMM_ACC = Opcode.GEMM_ACC
_RESET_CYCLES = 3


@dataclass(frozen=True)
class GemvRun:
    """A tile through the RTL: y (float32; [rows] for a GEMV, [M, N] for a gemm), the cycles, the
    passes it took."""

    y: np.ndarray
    cycles: int
    passes: int


def model_cycles(lanes: int, k: int, rows: int, weight_bytes_per_cycle: float | None = None, *,
                 batch: int = 1) -> int:
    """Cycles the analytic model of pim_gemv predicts for a tile (``batch`` activation rows).

    batch * ceil(rows / lanes) passes of k beats, one beat per cycle or slower when the weight
    stream (2 * lanes bytes per beat) is bandwidth bound, plus the pipeline latency:
        max(beats, ceil(beats * 2 * lanes / weight_bytes_per_cycle)) + PIPELINE_LATENCY
    """
    _positive(lanes=lanes, k=k, rows=rows, batch=batch)
    beats = batch * math.ceil(rows / lanes) * k
    if weight_bytes_per_cycle is not None:
        beats = max(beats, math.ceil(beats * 2 * lanes / weight_bytes_per_cycle))
    return beats + PIPELINE_LATENCY


def _positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int) or v < 1:
            raise InputError(f"{name} must be a positive integer, got {v!r}")


class _Port:
    """One pim_gemv port: cached pyverilator accessors (no per-call name lookup)."""

    def __init__(self, sim, name: str):
        self.signal = getattr(sim.io, name).signal
        self.last: int | None = None

    def set(self, value: int) -> None:
        if value != self.last:
            self.signal.write(value)
            self.last = value

    def get(self) -> int:
        return int(self.signal.value)


class PimGemv:
    """A pim_gemv with ``lanes`` lanes, built once (cached) and driven cycle by cycle from Python.

    Get one with ``pim_gemv(lanes)``: a Verilated model library holds one simulation context, so
    a process loads each one once and reuses it (``run`` resets the unit first).
    Raises ToolchainMissing / RtlBuildError (opbsim.rtl_models.build) when it cannot be built.
    """

    def __init__(self, lanes: int = 8):
        _positive(lanes=lanes)
        from pyverilator import PyVerilator

        self.lanes = lanes
        self._sim = PyVerilator(str(build_model("pim_gemv", {"LANES": lanes})))
        self._sim.auto_eval = False
        names = ("clk rst_n cmd_valid cmd_ready cmd_op cmd_acc act_valid act_ready act_data "
                 "w_valid w_ready w_data w_last out_valid out_ready out_data").split()
        self._p = {n: _Port(self._sim, n) for n in names}

    def _tick(self) -> None:
        self._p["clk"].set(1)
        self._sim.eval()
        self._p["clk"].set(0)
        self._sim.eval()

    def _reset(self) -> None:
        p = self._p
        for n in ("cmd_valid", "act_valid", "w_valid", "out_ready"):
            p[n].set(0)
        p["rst_n"].set(0)
        for _ in range(_RESET_CYCLES):
            self._tick()
        p["rst_n"].set(1)
        self._sim.eval()

    def run(self, w_bits, x_bits, acc=None, *, weight_bytes_per_cycle: float | None = None) -> GemvRun:
        """y = W x for W [rows, K] and x [K] given as bf16 bit patterns (uint16).

        ``acc`` (float32 [rows]) makes it gemm_acc: each sum starts from acc[m] instead of +0.
        """
        w = np.asarray(w_bits, dtype=np.uint16)
        x = np.asarray(x_bits, dtype=np.uint16)
        if w.ndim != 2 or x.shape != (w.shape[1],):
            raise InputError(f"W must be [rows, K] and x [K]; got {w.shape} and {x.shape}")
        acc2 = None if acc is None else np.asarray(acc, dtype=np.float32).reshape(1, -1)
        out = self.gemm(x[None, :], w.T, acc2, weight_bytes_per_cycle=weight_bytes_per_cycle)
        return GemvRun(out.y[0], out.cycles, out.passes)

    def gemm(self, a_bits, b_bits, acc=None, *, weight_bytes_per_cycle: float | None = None) -> GemvRun:
        """The ISA's gemm (acc None) or gemm_acc on this unit: a [M, K] x b [K, N], bf16 bit patterns.

        Each row of a is one GEMV of ceil(N / lanes) passes, all streamed back to back (the weight
        panels are streamed again for every row: the unit keeps no weights). Returns y float32
        [M, N], equal to numerics.gemm(widen(a), widen(b), acc) bit for bit, and the cycles.
        """
        a = np.asarray(a_bits, dtype=np.uint16)
        b = np.asarray(b_bits, dtype=np.uint16)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[0]:
            raise InputError(f"gemm needs a [M, K] and b [K, N]; got {a.shape} and {b.shape}")
        (m_rows, k), n = a.shape, b.shape[1]
        _positive(k=k, rows=n, batch=m_rows)
        if weight_bytes_per_cycle is not None and not weight_bytes_per_cycle > 0:
            raise InputError(f"weight_bytes_per_cycle must be > 0, got {weight_bytes_per_cycle}")
        lanes = self.lanes
        passes = math.ceil(n / lanes)
        w_pad = np.zeros((passes * lanes, k), dtype="<u2")
        w_pad[:n] = b.T
        panels = w_pad.reshape(passes, lanes, k).transpose(0, 2, 1).copy()  # [pass, k, lane]
        beats = [int.from_bytes(panels[i, j].tobytes(), "little") for i in range(passes) for j in range(k)]
        acc_bits = np.zeros((m_rows, passes * lanes), dtype="<u4")
        if acc is not None:
            acc_bits[:, :n] = np.asarray(acc, dtype=np.float32).reshape(m_rows, n).view(np.uint32)
        cmd = [int.from_bytes(acc_bits[m, i * lanes:(i + 1) * lanes].tobytes(), "little")
               for m in range(m_rows) for i in range(passes)]
        xs = [[int(v) for v in row] for row in a]
        op = _OP_GEMM if acc is None else _OP_GEMM_ACC
        outs, cycles = self._stream(op, cmd, xs, beats, k, weight_bytes_per_cycle)
        y = np.frombuffer(b"".join(v.to_bytes(4 * lanes, "little") for v in outs), dtype="<u4")
        y = y.reshape(m_rows, passes * lanes)[:, :n].view(np.float32).copy()
        return GemvRun(y, cycles, m_rows * passes)

    def _stream(self, op: int, cmd: list[int], xs: list[list[int]], beats: list[int], k: int,
                bw: float | None) -> tuple[list[int], int]:
        """Streams len(cmd) passes (pass i: activation row i // passes_per_row, weight panel
        i % passes_per_row); returns the raw results and the cycle count."""
        p = self._p
        self._reset()
        p["cmd_op"].set(op)
        p["out_ready"].set(1)
        beat_bytes = 2 * self.lanes
        cap = beat_bytes + bw if bw is not None else 0.0  # credit waiting for a beat is kept
        credit = float(beat_bytes)
        per_row = len(beats) // k
        total = len(cmd) * k
        ci = bi = edge = 0
        first_edge = last_edge = -1
        outs: list[int] = []
        limit = 4 * total * max(1.0, beat_bytes / (bw or beat_bytes)) + 100
        while len(outs) < len(cmd):
            if edge > limit:
                raise RuntimeError(f"pim_gemv produced {len(outs)} of {len(cmd)} results in {edge} cycles")
            have_w = bi < total and (bw is None or credit >= beat_bytes)
            p["cmd_valid"].set(int(ci < len(cmd)))
            if ci < len(cmd):
                p["cmd_acc"].set(cmd[ci])
            p["act_valid"].set(int(bi < total))
            p["w_valid"].set(int(have_w))
            if bi < total:
                pass_i, kk = divmod(bi, k)
                p["act_data"].set(xs[pass_i // per_row][kk])
                p["w_data"].set(beats[(pass_i % per_row) * k + kk])
                p["w_last"].set(int(kk == k - 1))
            self._sim.eval()
            fire = have_w and p["w_ready"].get() == 1
            cmd_fire = ci < len(cmd) and p["cmd_ready"].get() == 1
            if p["out_valid"].get():
                outs.append(p["out_data"].get())
                last_edge = edge + 1
            self._tick()
            edge += 1
            if fire:
                if first_edge < 0:
                    first_edge = edge
                bi += 1
                credit -= beat_bytes
            if bw is not None:
                credit = min(credit + bw, cap)
            ci += int(cmd_fire)
        return outs, last_edge - first_edge + 1


def _ordinary_bf16(rng: np.random.Generator, n: int) -> np.ndarray:
    """bf16 words of either sign with exponents near 1.0: sums that round at every step."""
    words = (rng.integers(0, 2, n) << 15) | (rng.integers(120, 134, n) << 7) | rng.integers(0, 128, n)
    return words.astype(np.uint16)


@functools.cache
def pim_gemv(lanes: int = 8) -> PimGemv:
    """The process's pim_gemv model with ``lanes`` lanes (built on first use)."""
    return PimGemv(lanes)


def rtl_cycles(lanes: int, k: int, rows: int, *, weight_bytes_per_cycle: float | None = None,
               seed: int = 0) -> tuple[int, GemvRun, tuple[np.ndarray, np.ndarray]]:
    """Runs a random bf16 tile of this shape through the RTL.

    Returns (cycles, the run, (W bits [rows, k], x bits [k])) so a caller can check the outputs.
    """
    _positive(lanes=lanes, k=k, rows=rows)
    rng = np.random.default_rng(seed)
    w, x = _ordinary_bf16(rng, rows * k).reshape(rows, k), _ordinary_bf16(rng, k)
    run = pim_gemv(lanes).run(w, x, weight_bytes_per_cycle=weight_bytes_per_cycle)
    return run.cycles, run, (w, x)
