"""Build one-instruction programs over random strided operands, run them, and read results.

Each operand is a view (any axis order, padded rows, or stride-0 broadcast axes) into a
contiguous backing tensor filled with random storage values, corner cases included.
"""

from __future__ import annotations

import numpy as np

from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.functional import execute, execute_group
from opbsim.isa.numerics import STORAGE
from opbsim.isa.program import Instruction, Program
from opbsim.isa.spec import BY_MNEMONIC, FieldKind
from opbsim.isa.types import Descriptor, DType, Space, Unit, row_major_strides
from tests.unit.numerics.samples import special_bf16_bits, special_f32

__all__ = ["Bench", "random_raw", "LAYOUTS"]

LAYOUTS = ("c", "permuted", "padded", "broadcast")


def random_raw(rng: np.random.Generator, dtype: DType, shape: tuple[int, ...]) -> np.ndarray:
    n = int(np.prod(shape))
    if dtype is DType.BF16:
        return special_bf16_bits(rng, n).reshape(shape)
    if dtype is DType.FP32:
        return special_f32(rng, n).reshape(shape)
    if dtype is DType.FP8_E4M3:  # every code, the two NaNs and the signed zeros included
        return rng.integers(0, 256, n, dtype=np.uint16).astype(np.uint8).reshape(shape)
    return rng.integers(-(2**31), 2**31, n, dtype=np.int64).astype(np.int32).reshape(shape)


class Bench:
    """Descriptors and their initial contents for one test program."""

    def __init__(self, rng: np.random.Generator, space: Space = Space.HBM):
        self.rng = rng
        self.space = space
        self.descs: list[Descriptor] = []
        self.fills: list[tuple[Descriptor, np.ndarray]] = []
        self.top = 0

    def _alloc(self, nbytes: int) -> int:
        base = self.top
        self.top += (nbytes + 63) // 64 * 64 + 64
        return base

    def tensor(self, name: str, dtype: DType, shape: tuple[int, ...], layout: str = "c",
               data: np.ndarray | None = None, fill: bool = True) -> str:
        """A view of logical ``shape``; filled with ``data`` (storage values, broadcast to the
        backing tensor) or random values unless ``fill`` is False."""
        shape = tuple(shape)
        rank = len(shape)
        phys = list(shape)
        order = list(range(rank))
        if layout == "broadcast":
            for ax in range(rank):
                if self.rng.random() < 0.5:
                    phys[ax] = 1
        if layout in ("permuted", "padded"):
            self.rng.shuffle(order)
        pshape = [phys[a] for a in order]
        if layout == "padded":
            pshape[-1] += int(self.rng.integers(1, 4))
        pstrides = row_major_strides(tuple(pshape))
        strides = [0] * rank
        for pos, ax in enumerate(order):
            strides[ax] = 0 if (layout == "broadcast" and phys[ax] == 1 and shape[ax] > 1) else pstrides[pos]
        size = dtype.itemsize_B * int(np.prod(pshape))
        base = self._alloc(size)
        store = Descriptor(f"{name}_mem", self.space, base, dtype, (int(np.prod(pshape)),), (1,))
        view = Descriptor(name, self.space, base, dtype, shape, tuple(strides))
        self.descs += [store, view]
        if fill:
            if data is None:
                backing = random_raw(self.rng, dtype, (store.shape[0],))
                self.fills.append((store, backing))
            else:
                self.fills.append((view, np.asarray(data, dtype=STORAGE[dtype])))
        return name

    def memory(self) -> DataMemory:
        mem = DataMemory({self.space: self.top + 64})
        for d, raw in self.fills:
            if d.name.endswith("_mem"):
                mem.write_raw(d, raw)
            else:
                _write_view(mem, d, raw)
        return mem

    def program(self, mnemonic: str, operands: dict, unit: Unit = Unit.XPU) -> Program:
        spec = BY_MNEMONIC[mnemonic]
        index = {d.name: i for i, d in enumerate(self.descs)}
        ops = []
        for f in spec.fields:
            v = operands.get(f.name, f.default)
            ops.append(index[v] if f.kind is FieldKind.DESC else v)
        return Program(tuple(self.descs), (Instruction(mnemonic, unit, tuple(ops)), Instruction("halt", Unit.CTRL, ())))

    def run(self, mnemonic: str, operands: dict, unit: Unit = Unit.XPU) -> tuple[DataMemory, dict]:
        """Execute; returns the memory and the inputs' logical storage values read before."""
        prog = self.program(mnemonic, operands, unit)
        mem = self.memory()
        before = {d.name: mem.raw(d).copy() for d in self.descs if not d.name.endswith("_mem") and _written(mem, d)}
        execute(prog, mem)
        return mem, before

    def raw(self, mem: DataMemory, name: str) -> np.ndarray:
        return mem.raw(next(d for d in self.descs if d.name == name)).copy()


def _written(mem: DataMemory, d: Descriptor) -> bool:
    try:
        mem.raw(d)
    except Exception:
        return False
    return True


def _write_view(mem: DataMemory, d: Descriptor, raw: np.ndarray) -> None:
    """Fill a possibly broadcasting view: write through the non-broadcast sub-view."""
    keep = tuple(slice(None) if s or n == 1 else slice(0, 1) for n, s in zip(d.shape, d.strides_elems))
    shape = tuple(1 if (s == 0 and n > 1) else n for n, s in zip(d.shape, d.strides_elems))
    sub = Descriptor(d.name, d.space, d.base_B, d.dtype, shape, d.strides_elems)
    mem.write_raw(sub, np.broadcast_to(raw, d.shape)[keep])


def group_run(benches: list[Bench], mnemonic: str, operands: dict) -> list[DataMemory]:
    prog = benches[0].program(mnemonic, operands, Unit.DMA)
    mems = [b.memory() for b in benches]
    execute_group(prog, mems)
    return mems
