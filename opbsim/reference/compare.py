"""Bit-for-bit comparison of raw storage, reporting mismatches by coordinates with both values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opbsim.isa.floatbits import bf16_widen

__all__ = ["Mismatch", "Comparison", "compare"]

_WIDTH = {1: np.uint8, 2: np.uint16, 4: np.uint32}


@dataclass(frozen=True)
class Mismatch:
    """One differing element: its coordinates, both bit patterns and both values."""

    index: tuple[int, ...]
    got_bits: int
    want_bits: int
    got: float | int
    want: float | int

    def text(self, digits: int) -> str:
        return (f"[{', '.join(map(str, self.index))}]: got {self.got_bits:#0{digits + 2}x} ({self.got!r}), "
                f"want {self.want_bits:#0{digits + 2}x} ({self.want!r})")


@dataclass(frozen=True)
class Comparison:
    """``equal`` of ``count`` elements have the wanted bits; the first mismatches are kept.

    ``problem`` names a shape or dtype disagreement (then nothing is equal)."""

    name: str
    count: int
    equal: int
    mismatches: tuple[Mismatch, ...] = ()
    problem: str | None = None
    digits: int = 8

    @property
    def bit_exact(self) -> bool:
        return self.problem is None and self.equal == self.count

    def lines(self) -> list[str]:
        """One line for the verdict, then one per kept mismatch."""
        if self.problem:
            return [f"{self.name}: {self.problem}"]
        head = f"{self.name}: {'bit-exact' if self.bit_exact else 'MISMATCH'} ({self.equal}/{self.count})"
        return [head] + [f"  {self.name}{m.text(self.digits)}" for m in self.mismatches]


def _value(raw: np.generic, dtype: np.dtype) -> float | int:
    if dtype == np.uint16:
        return float(bf16_widen(np.array(raw, dtype=np.uint16)))
    if dtype == np.float32:
        return float(raw)
    return int(raw)


def compare(name: str, got, want, limit: int = 5) -> Comparison:
    """Compare raw storage bit for bit (bf16 as uint16, fp32 as float32, i32 as int32)."""
    got, want = np.ascontiguousarray(got), np.ascontiguousarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return Comparison(name, int(want.size), 0,
                          problem=f"got {got.dtype}{list(got.shape)}, want {want.dtype}{list(want.shape)}")
    width = _WIDTH[got.dtype.itemsize]
    gb, wb = got.view(width), want.view(width)
    diff = gb != wb
    bad = np.argwhere(diff)[:limit]
    mismatches = tuple(
        Mismatch(tuple(int(i) for i in ix), int(gb[tuple(ix)]), int(wb[tuple(ix)]),
                 _value(got[tuple(ix)], got.dtype), _value(want[tuple(ix)], want.dtype))
        for ix in bad
    )
    return Comparison(name, int(want.size), int(want.size - np.count_nonzero(diff)), mismatches,
                      digits=2 * got.dtype.itemsize)
