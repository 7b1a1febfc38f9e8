"""What a validation run reports: per output tensor, bit equality with the numerics definition
and the error against the float64 golden layer."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from opbsim.emulator.golden import relative_error
from opbsim.isa.floatbits import bf16_widen

__all__ = ["OutputCheck", "LayerReport", "check_output", "bf16_to_f64"]


@dataclass(frozen=True)
class OutputCheck:
    """One output tensor: ``equal`` of ``count`` values have the definition's bits; the error
    against the float64 golden g is max|y - g| / max|g| and mean|y - g| / mean|g| (None when not
    measured)."""

    name: str
    count: int
    equal: int
    max_rel: float | None = None
    mean_rel: float | None = None

    @property
    def bit_exact(self) -> bool:
        return self.equal == self.count


@dataclass
class LayerReport:
    layer: str
    shape: str
    outputs: list[OutputCheck] = field(default_factory=list)
    instructions: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def bit_exact(self) -> bool:
        return all(o.bit_exact for o in self.outputs)


def bf16_to_f64(bits: np.ndarray) -> np.ndarray:
    return bf16_widen(bits).astype(np.float64)


def check_output(name: str, got_raw: np.ndarray, want_raw: np.ndarray,
                 got_f64: np.ndarray | None = None, golden: np.ndarray | None = None) -> OutputCheck:
    """Compare raw storage bit for bit; measure the error against ``golden`` when given."""
    got = np.ascontiguousarray(got_raw)
    want = np.ascontiguousarray(want_raw)
    if got.shape != want.shape or got.dtype != want.dtype:
        return OutputCheck(name, int(want.size), 0)
    width = {1: np.uint8, 2: np.uint16, 4: np.uint32}[got.dtype.itemsize]
    equal = int(np.count_nonzero(got.view(width) == want.view(width)))
    if golden is None or got_f64 is None:
        return OutputCheck(name, int(want.size), equal)
    worst, mean = relative_error(got_f64, golden)
    return OutputCheck(name, int(want.size), equal, worst, mean)
