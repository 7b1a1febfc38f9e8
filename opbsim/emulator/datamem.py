"""The bytes of one device's address spaces, with a record of which bytes hold written data.

Each space is a flat little-endian byte array of the capacity the caller gives, reserved as
address space and backed by memory only where a view touches it (lazymem.py), so an 80 GiB HBM
costs what the program uses. A descriptor is a strided numpy view
into it, in the storage dtype of its element type: bf16 as uint16 bit patterns (2 bytes each,
never a float32 copy), fp32 as float32, i32 as int32. One bit per byte records whether the byte
was written; reading a byte never written is a fault, as is a view outside its space, a base
that is not a multiple of the element size, or a destination view that overlaps itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from opbsim.emulator.faults import MemoryFault
from opbsim.emulator.lazymem import ReservedBytes
from opbsim.isa import numerics
from opbsim.isa.numerics import STORAGE
from opbsim.isa.types import Descriptor, DType, Space

__all__ = ["DataMemory", "element_offsets_B", "overlaps_itself", "row_descriptor"]


def _space_name(space: Space) -> str:
    return space.name.lower()


def overlaps_itself(shape: tuple[int, ...], strides: tuple[int, ...]) -> bool:
    """True unless each stride, in increasing order, passes the span of the smaller ones.

    Conservative: a view passing this test names every element once (a destination must).
    """
    span = 1
    for stride, dim in sorted((s, d) for d, s in zip(shape, strides) if d > 1):
        if stride < span:
            return True
        span += (dim - 1) * stride
    return False


def row_descriptor(desc: Descriptor, r: int) -> Descriptor:
    """The view of row ``r`` of ``desc``'s leading axis (same name, for messages)."""
    size = desc.dtype.itemsize_B
    return Descriptor(desc.name, desc.space, desc.base_B + r * desc.strides_elems[0] * size, desc.dtype,
                      desc.shape[1:], desc.strides_elems[1:])


def element_offsets_B(desc: Descriptor) -> np.ndarray:
    """Byte address of every element of ``desc``, in row-major element order (int64)."""
    off = np.array(desc.base_B, dtype=np.int64)
    size = desc.dtype.itemsize_B
    for dim, stride in zip(desc.shape, desc.strides_elems):
        off = off[..., None] + np.arange(dim, dtype=np.int64) * (stride * size)
    return off.ravel()


class _Pin:
    """Exposes a reservation's array and holds the reservation: every numpy view taken from the
    array keeps this object, so the reserved memory outlives the DataMemory while views exist."""

    def __init__(self, reserved: ReservedBytes):
        self.__array_interface__ = reserved.array.__array_interface__
        self._reserved = reserved


def _pinned(reserved: ReservedBytes) -> np.ndarray:
    return np.asarray(_Pin(reserved))


class DataMemory:
    """Byte-addressed memory of one device, one array per address space.

    ``capacities_B`` maps each address space the device has to its size in bytes; a descriptor
    in a space not listed is a fault.
    """

    def __init__(self, capacities_B: Mapping[Space, int]):
        self._data: dict[Space, np.ndarray] = {}
        self._written: dict[Space, np.ndarray] = {}
        self._reserved: dict[Space, tuple[ReservedBytes, ReservedBytes]] = {}
        for space, cap in capacities_B.items():
            if not isinstance(space, Space):
                raise MemoryFault(f"{space!r} is not an address space")
            if not isinstance(cap, int | np.integer) or isinstance(cap, bool) or cap < 0:
                raise MemoryFault(f"capacity of {_space_name(space)} must be a byte count >= 0, got {cap!r}")
            self._reserved[space] = (ReservedBytes(int(cap)), ReservedBytes((int(cap) + 7) // 8))
            self._data[space] = _pinned(self._reserved[space][0])
            self._written[space] = _pinned(self._reserved[space][1])

    @property
    def spaces(self) -> tuple[Space, ...]:
        return tuple(self._data)

    def capacity_B(self, space: Space) -> int:
        return int(self._data[space].size) if space in self._data else 0

    # --- views -------------------------------------------------------------------------------
    def _view(self, desc: Descriptor) -> np.ndarray:
        if desc.space not in self._data:
            raise MemoryFault(f"{desc.name}: this device has no {_space_name(desc.space)} memory")
        size = desc.dtype.itemsize_B
        if desc.base_B % size:
            raise MemoryFault(
                f"{desc.name}: base {desc.base_B:#x} is not a multiple of {size} bytes ({desc.dtype.name.lower()})"
            )
        cap = self.capacity_B(desc.space)
        if desc.base_B + desc.extent_B > cap:
            raise MemoryFault(
                f"{desc.name}: bytes {desc.base_B:#x}..{desc.base_B + desc.extent_B:#x} are outside "
                f"{_space_name(desc.space)} (capacity {cap:#x} bytes)"
            )
        data, written = self._reserved[desc.space]
        data.commit(desc.base_B, desc.base_B + desc.extent_B)
        written.commit(desc.base_B >> 3, ((desc.base_B + desc.extent_B) >> 3) + 1)
        strides = tuple(s * size for s in desc.strides_elems)
        return np.ndarray(desc.shape, dtype=STORAGE[desc.dtype], buffer=self._data[desc.space],
                          offset=desc.base_B, strides=strides)

    def raw(self, desc: Descriptor) -> np.ndarray:
        """The storage view of ``desc`` (no copy), after checking every byte it names was written.

        The view aliases memory: copy it before writing to an overlapping destination.
        """
        view = self._view(desc)
        missing = self._first_unwritten(desc)
        if missing is not None:
            raise MemoryFault(f"{desc.name}: reads uninitialised {_space_name(desc.space)} byte {missing:#x}")
        return view

    def write_raw(self, desc: Descriptor, raw) -> None:
        """Write storage values (bf16 bits, float32 or int32, broadcastable to the shape)."""
        view = self._view(desc)
        if overlaps_itself(desc.shape, desc.strides_elems):
            raise MemoryFault(
                f"{desc.name}: a destination must not overlap itself "
                f"(shape [{', '.join(map(str, desc.shape))}], strides [{', '.join(map(str, desc.strides_elems))}])"
            )
        view[...] = np.asarray(raw).astype(view.dtype, copy=False)
        self._mark_written(desc)

    def fill(self, desc: Descriptor, write: Callable[[np.ndarray], None]) -> None:
        """Write the storage of ``desc`` in place: ``write(view)`` must set every element of the
        view it is given (the storage view, as ``raw`` gives it); the bytes then count as written.
        For data made where it lands (seeded weights), without a copy."""
        view = self._view(desc)
        if overlaps_itself(desc.shape, desc.strides_elems):
            raise MemoryFault(f"{desc.name}: a destination must not overlap itself")
        write(view)
        self._mark_written(desc)

    # --- host access -------------------------------------------------------------------------
    def load(self, desc: Descriptor) -> np.ndarray:
        """Values of ``desc`` as a new array: float32 for bf16 and fp32 (exact), int32 for i32."""
        return np.array(numerics.widen(self.raw(desc), desc.dtype), copy=True)

    def store(self, desc: Descriptor, values) -> None:
        """Host write: floats are rounded to binary32 (RNE), then stored by ``numerics.store``
        (bf16 RNE, canonical NaN); integers go to i32 descriptors unchanged."""
        if desc.dtype is DType.I32:
            arr = np.asarray(values)
            if not np.issubdtype(arr.dtype, np.integer) or arr.size and (
                    arr.min() < -(2**31) or arr.max() >= 2**31):
                raise MemoryFault(f"{desc.name}: i32 data must be integers in -2^31..2^31-1")
            self.write_raw(desc, arr.astype(np.int32))
            return
        self.write_raw(desc, numerics.store(np.asarray(values, dtype=np.float32), desc.dtype))

    # --- the written-byte record -------------------------------------------------------------
    def _dense(self, desc: Descriptor) -> bool:
        return desc.nbytes == desc.extent_B and not overlaps_itself(desc.shape, desc.strides_elems)

    def _mark_written(self, desc: Descriptor) -> None:
        bits = self._written[desc.space]
        if self._dense(desc):
            _set_range(bits, desc.base_B, desc.base_B + desc.extent_B)
            return
        b = _element_bytes(desc)
        np.bitwise_or.at(bits, b >> 3, (np.uint8(1) << (b & 7).astype(np.uint8)))

    def _first_unwritten(self, desc: Descriptor) -> int | None:
        bits = self._written[desc.space]
        lo, hi = desc.base_B, desc.base_B + desc.extent_B
        if _first_unset(bits, lo, hi) is None:
            return None
        if self._dense(desc):
            return _first_unset(bits, lo, hi)
        b = _element_bytes(desc)
        unset = ((bits[b >> 3] >> (b & 7).astype(np.uint8)) & 1) == 0
        return int(b[unset].min()) if unset.any() else None


def _element_bytes(desc: Descriptor) -> np.ndarray:
    offs = element_offsets_B(desc)
    return (offs[:, None] + np.arange(desc.dtype.itemsize_B, dtype=np.int64)).ravel()


def _edge_masks(lo: int, hi: int) -> tuple[int, int, int, int]:
    """First and last bitmap byte of bytes lo..hi-1 and the bit masks within them."""
    b0, b1 = lo >> 3, (hi - 1) >> 3
    m0 = (0xFF << (lo & 7)) & 0xFF
    m1 = 0xFF >> (7 - ((hi - 1) & 7))
    return b0, b1, m0, m1


def _set_range(bits: np.ndarray, lo: int, hi: int) -> None:
    if lo >= hi:
        return
    b0, b1, m0, m1 = _edge_masks(lo, hi)
    if b0 == b1:
        bits[b0] |= m0 & m1
        return
    bits[b0] |= m0
    bits[b0 + 1:b1] = 0xFF
    bits[b1] |= m1


def _first_unset(bits: np.ndarray, lo: int, hi: int) -> int | None:
    """Lowest byte address in lo..hi-1 whose written bit is clear, or None."""
    if lo >= hi:
        return None
    b0, b1, m0, m1 = _edge_masks(lo, hi)
    if b0 == b1:
        return _lowest_clear(b0, m0 & m1, int(bits[b0]))
    first = _lowest_clear(b0, m0, int(bits[b0]))
    if first is not None:
        return first
    mid = bits[b0 + 1:b1]
    if mid.size and not (mid == 0xFF).all():
        j = int(np.argmax(mid != 0xFF))
        return _lowest_clear(b0 + 1 + j, 0xFF, int(mid[j]))
    return _lowest_clear(b1, m1, int(bits[b1]))


def _lowest_clear(byte: int, mask: int, value: int) -> int | None:
    absent = mask & ~value
    return None if absent == 0 else byte * 8 + (absent & -absent).bit_length() - 1
