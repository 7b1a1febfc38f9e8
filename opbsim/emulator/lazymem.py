"""Address space reserved whole, backed by memory only where it is used.

A device's HBM is 80 GiB; a program touches a few of them. The range is reserved without access
rights (which commits nothing, whatever the system's overcommit policy) and made readable and
writable granule by granule before a view touches it, so untouched bytes cost nothing and read
as zero.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap

import numpy as np

__all__ = ["ReservedBytes"]

_GRANULE_B = 2 * 2**20
_PROT_NONE, _PROT_RW = 0, mmap.PROT_READ | mmap.PROT_WRITE
_FLAGS = mmap.MAP_PRIVATE | getattr(mmap, "MAP_ANONYMOUS", 0x20) | getattr(mmap, "MAP_NORESERVE", 0x4000)
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
_libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


class ReservedBytes:
    """``array``: a uint8 array of ``nbytes`` zeros; call ``commit(lo, hi)`` before touching
    bytes ``lo..hi-1`` through it (touching an uncommitted byte is a segmentation fault)."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes
        size = max(nbytes, 1)
        addr = _libc.mmap(None, size, _PROT_NONE, _FLAGS, -1, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise MemoryError(f"cannot reserve {nbytes} bytes of address space: errno {ctypes.get_errno()}")
        self._addr, self._size = addr, size
        self._committed = np.zeros(-(-size // _GRANULE_B), dtype=bool)
        self.array = np.ctypeslib.as_array((ctypes.c_uint8 * size).from_address(addr))[:nbytes]

    def commit(self, lo: int, hi: int) -> None:
        if hi <= lo:
            return
        g0, g1 = lo // _GRANULE_B, -(-hi // _GRANULE_B)
        todo = np.flatnonzero(~self._committed[g0:g1])
        if not todo.size:
            return
        start = (g0 + int(todo[0])) * _GRANULE_B
        end = min((g0 + int(todo[-1]) + 1) * _GRANULE_B, self._size)
        if _libc.mprotect(self._addr + start, end - start, _PROT_RW) != 0:
            raise MemoryError(f"cannot back {end - start} bytes of emulated memory: errno {ctypes.get_errno()}")
        self._committed[g0:g1] = True

    def __del__(self) -> None:
        if getattr(self, "_addr", None):
            _libc.munmap(self._addr, self._size)
