"""Estimates: the ideal cost of an op, independent of any device.

``flops`` counts every arithmetic operation the op's definition performs (a multiply-add is 2).
``read_B`` and ``write_B`` count compulsory memory traffic: each operand read once, each result
written once, nothing re-read because a buffer was too small (tiling adds that, per device).
``link_B`` is what one device sends over the interconnect (collectives only).
``op_per_B`` is the arithmetic intensity, flops per byte of memory traffic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Estimates", "total"]


@dataclass(frozen=True, slots=True)
class Estimates:
    flops: int
    read_B: int
    write_B: int
    link_B: int = 0

    def __post_init__(self) -> None:
        for name in ("flops", "read_B", "write_B", "link_B"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"Estimates.{name} must be a non-negative integer, got {value!r}")

    @property
    def bytes_B(self) -> int:
        """Memory traffic: bytes read plus bytes written."""
        return self.read_B + self.write_B

    @property
    def op_per_B(self) -> float:
        """FLOPs per byte of memory traffic; ``inf`` for an op that computes without moving data."""
        if self.bytes_B == 0:
            return math.inf if self.flops else 0.0
        return self.flops / self.bytes_B

    def __add__(self, other: Estimates) -> Estimates:
        return Estimates(self.flops + other.flops, self.read_B + other.read_B, self.write_B + other.write_B,
                         self.link_B + other.link_B)

    def scaled(self, factor: int) -> Estimates:
        """The cost of ``factor`` identical ops."""
        return Estimates(self.flops * factor, self.read_B * factor, self.write_B * factor, self.link_B * factor)


def total(estimates: Iterable[Estimates]) -> Estimates:
    acc = Estimates(0, 0, 0)
    for e in estimates:
        acc = acc + e
    return acc
