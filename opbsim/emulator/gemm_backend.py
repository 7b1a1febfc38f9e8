"""Where the functional executor's PIM GEMMs are computed: numba kernels (the default) or the RTL
Logic-PIM GEMM unit through its pyverilator bridge (``--rtl``).

The choice is scoped with ``rtl_pim_gemm(lanes)`` (a context variable, so two runs in one process
do not see each other's choice). Both give numerics.gemm's bits; the RTL path also counts the
tiles it ran and their cycles.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

import numpy as np

__all__ = ["RtlGemmStats", "pim_gemm_backend", "rtl_pim_gemm"]

GemmFn = Callable[[np.ndarray, np.ndarray, "np.ndarray | None"], np.ndarray]
_PIM_GEMM: ContextVar[GemmFn | None] = ContextVar("opbsim_pim_gemm", default=None)


@dataclass(slots=True)
class RtlGemmStats:
    """Tiles (2-D GEMMs) the RTL unit ran and the cycles they took."""

    tiles: int = 0
    cycles: int = 0


def pim_gemm_backend() -> GemmFn | None:
    """The GEMM function for PIM-unit instructions in the current context, or None (numba)."""
    return _PIM_GEMM.get()


@contextlib.contextmanager
def rtl_pim_gemm(lanes: int) -> Iterator[RtlGemmStats]:
    """Within the block, every gemm / gemm_acc issued to the PIM unit runs on the RTL unit."""
    from opbsim.rtl_models.cosim import pim_gemv

    unit = pim_gemv(lanes)
    stats = RtlGemmStats()

    def gemm(a_bits: np.ndarray, b_bits: np.ndarray, acc: np.ndarray | None) -> np.ndarray:
        run = unit.gemm(np.ascontiguousarray(a_bits), np.ascontiguousarray(b_bits), acc)
        stats.tiles += 1
        stats.cycles += run.cycles
        return run.y

    token = _PIM_GEMM.set(gemm)
    try:
        yield stats
    finally:
        _PIM_GEMM.reset(token)
