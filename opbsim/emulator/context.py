"""What an instruction handler sees: its operands as descriptors, values and destinations.

Operand checks raise OperandError with the messages the tests pin; the executor adds the
instruction index and assembly text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.faults import OperandError
from opbsim.isa import numerics
from opbsim.isa.program import Instruction, Program
from opbsim.isa.types import Descriptor, DType

__all__ = ["OpContext", "FLOATS", "shape_text"]

FLOATS = (DType.BF16, DType.FP32)


def shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, shape)) + "]"


def _dtype_names(dtypes: tuple[DType, ...]) -> str:
    return " or ".join(d.name.lower() for d in dtypes)


@dataclass(frozen=True, slots=True)
class OpContext:
    """One instruction on one device: operand access for its handler."""

    program: Program
    memory: DataMemory
    inst: Instruction

    def desc(self, field: str) -> Descriptor:
        return self.program.operand_descriptor(self.inst, field)

    def imm(self, field: str):
        return self.inst[field]

    def raw(self, field: str) -> np.ndarray:
        """The operand's storage view (no copy), every byte checked as written."""
        return self.memory.raw(self.desc(field))

    def values(self, field: str) -> np.ndarray:
        """The operand's values: float32 for bf16 / fp32 (exact), int32 for i32."""
        d = self.desc(field)
        return numerics.widen(self.memory.raw(d), d.dtype)

    def write(self, field: str, values) -> None:
        """Store fp32 values (or int32 for i32) into the operand, rounded by numerics.store."""
        d = self.desc(field)
        self.memory.write_raw(d, numerics.store(values, d.dtype))

    def write_raw(self, field: str, raw) -> None:
        self.memory.write_raw(self.desc(field), raw)

    # --- checks ------------------------------------------------------------------------------
    def need_dtype(self, field: str, *allowed: DType) -> Descriptor:
        d = self.desc(field)
        if d.dtype not in allowed:
            raise OperandError(
                f"operand {field} ({d.name}) is {d.dtype.name.lower()}, expected {_dtype_names(allowed)}"
            )
        return d

    def need_shape(self, field: str, shape: tuple[int, ...]) -> Descriptor:
        d = self.desc(field)
        if d.shape != tuple(shape):
            raise OperandError(
                f"operand {field} ({d.name}) has shape {shape_text(d.shape)}, expected {shape_text(tuple(shape))}"
            )
        return d

    def need_rank(self, field: str, *ranks: int) -> Descriptor:
        d = self.desc(field)
        if len(d.shape) not in ranks:
            expected = " or ".join(map(str, ranks))
            raise OperandError(f"operand {field} ({d.name}) has rank {len(d.shape)}, expected {expected}")
        return d

    def need_same_dtype(self, field: str, other: str) -> None:
        a, b = self.desc(field), self.desc(other)
        if a.dtype is not b.dtype:
            raise OperandError(
                f"operand {field} ({a.name}) is {a.dtype.name.lower()} but {other} ({b.name}) "
                f"is {b.dtype.name.lower()}"
            )

    def indices(self, field: str, limit: int) -> np.ndarray:
        """An i32 index operand, every entry checked to be in 0..limit-1 (int64 copy)."""
        d = self.need_dtype(field, DType.I32)
        idx = np.asarray(self.raw(field), dtype=np.int64).copy()
        bad = (idx < 0) | (idx >= limit)
        if bad.any():
            pos = np.unravel_index(int(np.argmax(bad)), idx.shape)
            where = ", ".join(map(str, pos))
            raise OperandError(
                f"operand {field} ({d.name}) entry [{where}] is {int(idx[pos])}, outside 0..{limit - 1}"
            )
        return idx
