"""The ISA's vocabulary: units, address spaces, data types, op groups and tensor descriptors.

Enum values are binary codes: they appear in encoded programs, so they never change meaning.
"""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass

from opbsim.errors import ProgramError

__all__ = ["Unit", "Space", "DType", "OpGroup", "Descriptor", "MAX_RANK", "row_major_strides"]

MAX_RANK = 4


class Unit(enum.IntEnum):
    """Execution units an instruction can be issued to."""

    CTRL = 0  # sequencer: halt
    XPU = 1  # tensor + vector engine of a GPU-class processor (Duplex xPU, H100, A100)
    PIM = 2  # processing-in-memory units (Duplex Logic-PIM, Bank-PIM, BankGroup-PIM)
    PCU = 3  # SN40L pattern compute unit
    PMU = 4  # SN40L pattern memory unit
    DMA = 5  # transfers between address spaces and devices


class Space(enum.IntEnum):
    """Address spaces a descriptor can live in."""

    HBM = 0
    DDR = 1
    SRAM = 2  # on-chip SRAM / scratchpad (xPU shared memory, SN40L PMUs)
    PIMBUF = 3  # Logic-PIM buffers on the HBM logic die
    HOST = 4  # host memory across PCIe


class DType(enum.IntEnum):
    """Element types. Storage is bf16; arithmetic is fp32; indices and positions are i32.
    FP8_E4M3 is the OCP 8-bit e4m3 format (OCP 8-bit Floating Point Specification (OFP8) rev. 1.0,
    2023: no infinities, largest finite 448, NaN S.1111.111), for fp8 weights, activations and KV
    caches; isa/fp8.py defines its conversions."""

    BF16 = 0
    FP32 = 1
    I32 = 2
    FP8_E4M3 = 3

    @property
    def itemsize_B(self) -> int:
        return _ITEMSIZE_B[self]


_ITEMSIZE_B = {DType.BF16: 2, DType.FP32: 4, DType.I32: 4, DType.FP8_E4M3: 1}


class OpGroup(enum.Enum):
    """Named instruction groups; passes and device models dispatch on these, not on opcodes."""

    DMA = "dma"
    COLLECTIVE = "collective"
    MATRIX = "matrix"
    VECTOR = "vector"
    FUSED = "fused"
    DATAFLOW = "dataflow"
    SYNC = "sync"
    CONTROL = "control"


def row_major_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Strides, in elements, of a contiguous row-major tensor of ``shape``."""
    strides = []
    step = 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A strided tensor view in one address space.

    ``base_B`` is a byte address (an executor requires a multiple of the element size);
    ``strides_elems`` count elements (a stride of 0 broadcasts).
    Invariants: 1 <= rank <= MAX_RANK, every dimension >= 1, strides >= 0, and the name is an
    assembly identifier.
    """

    name: str
    space: Space
    base_B: int
    dtype: DType
    shape: tuple[int, ...]
    strides_elems: tuple[int, ...]

    def __post_init__(self) -> None:
        if not is_identifier(self.name):
            raise ProgramError(f"descriptor name {self.name!r} is not an identifier")
        if not 1 <= len(self.shape) <= MAX_RANK:
            raise ProgramError(
                f"descriptor {self.name}: rank {len(self.shape)} is outside 1..{MAX_RANK}"
            )
        if len(self.strides_elems) != len(self.shape):
            raise ProgramError(
                f"descriptor {self.name}: {len(self.strides_elems)} strides for rank {len(self.shape)}"
            )
        if any(d < 1 or d >= 2**32 for d in self.shape):
            raise ProgramError(f"descriptor {self.name}: dimensions must be in 1..2^32-1")
        if any(s < 0 or s >= 2**31 for s in self.strides_elems):
            raise ProgramError(f"descriptor {self.name}: strides must be in 0..2^31-1")
        if not 0 <= self.base_B < 2**64:
            raise ProgramError(f"descriptor {self.name}: base must be in 0..2^64-1")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of the elements the view names (broadcast elements counted once per view slot)."""
        return self.numel * self.dtype.itemsize_B

    @property
    def footprint_B(self) -> int:
        """Bytes of the distinct elements the view names: a stride-0 (broadcast) axis counts once."""
        return math.prod(d for d, s in zip(self.shape, self.strides_elems) if s) * self.dtype.itemsize_B

    @property
    def extent_B(self) -> int:
        """Bytes from ``base_B`` to one past the last element the view can touch."""
        last = sum((d - 1) * s for d, s in zip(self.shape, self.strides_elems))
        return (last + 1) * self.dtype.itemsize_B

    @property
    def is_contiguous(self) -> bool:
        return self.strides_elems == row_major_strides(self.shape)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def is_identifier(text: str) -> bool:
    """Assembly identifiers: ASCII letter or underscore, then letters, digits, ``_`` or ``.``."""
    return _IDENTIFIER.fullmatch(text) is not None
