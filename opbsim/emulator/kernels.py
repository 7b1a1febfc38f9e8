"""Compiled kernels (numba) for the executor's hot instructions, bit-exact to isa/numerics.py.

Every kernel computes each output element with the same sequence of binary32 operations as the
definition: ``acc = acc + (a * b)`` for k = 0..K-1 in order, the product rounded before the add.
numba compiles without ``fastmath``, so LLVM neither contracts a multiply and an add into an FMA
nor reassociates a sum; the loops are vectorised across independent outputs only. Subnormals are
kept (numpy and numba leave the x86 FTZ/DAZ flags off).

GEMM operands stay bf16 (uint16 bit patterns) in memory, in any strided layout, and are widened
to fp32 on the fly. The schedule: parallel over 64-column panels of B; per block of 128 k, the
panel block is widened into a contiguous cache-resident buffer, and every 4-row tile of A
accumulates over it, four k at a time into a register, in order (the partial sums between
blocks are stored in fp32, which rounds nothing). A is widened once into fp32.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

__all__ = ["gemm_bf16", "gather_rows", "scatter_add_rows"]

_OPTS = dict(error_model="numpy", cache=True, nogil=True)
_NB = 64  # panel width (columns of C)
_KB = 128  # k block
_MR = 4  # rows of a tile
_SERIAL_FLOPS = 1 << 20  # below this, a serial kernel beats the thread-pool overhead


@njit(**_OPTS)
def _pack_panel(b, k0, kw, n0, nw, panel):
    """panel[k, j] = bits of fp32(b[k0 + k, n0 + j]) for k < kw, j < nw (panel: uint32).

    Eight columns at a time: eight read streams along k, 32-byte contiguous writes; as fast as
    any loop order tried for both a row-major B and a transposed weight view.
    """
    j = 0
    while j + 8 <= nw:
        for k in range(kw):
            for jj in range(8):
                panel[k, j + jj] = np.uint32(b[k0 + k, n0 + j + jj]) << np.uint32(16)
        j += 8
    for j2 in range(j, nw):
        for k in range(kw):
            panel[k, j2] = np.uint32(b[k0 + k, n0 + j2]) << np.uint32(16)


@njit(**_OPTS)
def _tile4(r, r0, rk0, p, pk0, kw, width, c):
    """c[i, j] += r[r0 + i, rk0 + k] * p[pk0 + k, j] for k = 0..kw-1 in order, i < 4, j < width.

    ``width`` is a multiple of 16, so the innermost loop is one whole 16-lane vector.
    """
    k = 0
    while k + 4 <= kw:
        ka = rk0 + k
        a00 = r[r0, ka]
        a01 = r[r0, ka + 1]
        a02 = r[r0, ka + 2]
        a03 = r[r0, ka + 3]
        a10 = r[r0 + 1, ka]
        a11 = r[r0 + 1, ka + 1]
        a12 = r[r0 + 1, ka + 2]
        a13 = r[r0 + 1, ka + 3]
        a20 = r[r0 + 2, ka]
        a21 = r[r0 + 2, ka + 1]
        a22 = r[r0 + 2, ka + 2]
        a23 = r[r0 + 2, ka + 3]
        a30 = r[r0 + 3, ka]
        a31 = r[r0 + 3, ka + 1]
        a32 = r[r0 + 3, ka + 2]
        a33 = r[r0 + 3, ka + 3]
        kp = pk0 + k
        for j in range(width):
            p0 = p[kp, j]
            p1 = p[kp + 1, j]
            p2 = p[kp + 2, j]
            p3 = p[kp + 3, j]
            s = c[0, j]
            s += a00 * p0
            s += a01 * p1
            s += a02 * p2
            s += a03 * p3
            c[0, j] = s
            s = c[1, j]
            s += a10 * p0
            s += a11 * p1
            s += a12 * p2
            s += a13 * p3
            c[1, j] = s
            s = c[2, j]
            s += a20 * p0
            s += a21 * p1
            s += a22 * p2
            s += a23 * p3
            c[2, j] = s
            s = c[3, j]
            s += a30 * p0
            s += a31 * p1
            s += a32 * p2
            s += a33 * p3
            c[3, j] = s
        k += 4
    while k < kw:
        for i in range(4):
            a = r[r0 + i, rk0 + k]
            for j in range(width):
                c[i, j] += a * p[pk0 + k, j]
        k += 1


@njit(**_OPTS)
def _tile1(r, r0, rk0, p, pk0, kw, width, c, ci):
    """One row: c[ci, j] += r[r0, rk0 + k] * p[pk0 + k, j] for k = 0..kw-1 in order."""
    for k in range(kw):
        a = r[r0, rk0 + k]
        for j in range(width):
            c[ci, j] += a * p[pk0 + k, j]


def _by_panels(a, b, acc):
    m, k_dim = a.shape
    n = b.shape[1]
    abits = np.empty((m, k_dim), np.uint32)
    for i in prange(m):
        for k in range(k_dim):
            abits[i, k] = np.uint32(a[i, k]) << np.uint32(16)
    af = abits.view(np.float32)
    for pnl in prange((n + _NB - 1) // _NB):
        n0 = pnl * _NB
        nw = min(_NB, n - n0)
        panel = np.zeros((_KB, _NB), np.uint32)
        pf = panel.view(np.float32)
        c = np.zeros((_MR, _NB), np.float32)
        for k0 in range(0, k_dim, _KB):
            kw = min(_KB, k_dim - k0)
            _pack_panel(b, k0, kw, n0, nw, panel)
            for m0 in range(0, m - _MR + 1, _MR):
                for i in range(_MR):
                    for j in range(nw):
                        c[i, j] = acc[m0 + i, n0 + j]
                _tile4(af, m0, k0, pf, 0, kw, _NB, c)
                for i in range(_MR):
                    for j in range(nw):
                        acc[m0 + i, n0 + j] = c[i, j]
            for i in range(m - m % _MR, m):
                for j in range(nw):
                    c[0, j] = acc[i, n0 + j]
                _tile1(af, i, k0, pf, 0, kw, _NB, c, 0)
                for j in range(nw):
                    acc[i, n0 + j] = c[0, j]


_by_panels_par = njit(parallel=True, **_OPTS)(_by_panels)
_by_panels_ser = njit(**_OPTS)(_by_panels)


def gemm_bf16(a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> None:
    """acc [M,N] (float32, C-contiguous) += a [M,K] x b [K,N], a and b uint16 bf16 bits, any
    strides; each element as numerics.gemm: acc = acc + (a[m,k] * b[k,n]), k = 0..K-1 in order.
    """
    m, k_dim = a.shape
    n = b.shape[1]
    if m == 0 or n == 0 or k_dim == 0:
        return
    small = 2 * m * n * k_dim < _SERIAL_FLOPS
    (_by_panels_ser if small else _by_panels_par)(a, b, acc)


@njit(parallel=True, **_OPTS)
def gather_rows(src, idx, out):
    """out[i, :] = src[idx[i], :] (any element type; indices already checked)."""
    for i in prange(idx.shape[0]):
        r = idx[i]
        for h in range(src.shape[1]):
            out[i, h] = src[r, h]


@njit(parallel=True, **_OPTS)
def scatter_add_rows(acc, src, idx, w):
    """acc[idx[i], h] = acc[idx[i], h] + (w[i] * src[i, h]) for i = 0..T-1 in order (fp32).

    Parallel over column blocks of h; each column sees the rows i in order.
    """
    n_rows, width = src.shape
    n_blocks = (width + 255) // 256
    for blk in prange(n_blocks):
        h0 = blk * 256
        h1 = min(width, h0 + 256)
        for i in range(n_rows):
            r = idx[i]
            wi = w[i]
            for h in range(h0, h1):
                acc[r, h] = acc[r, h] + wi * src[i, h]


def thread_count() -> int:
    """Threads the parallel kernels use (numba's setting)."""
    return numba.get_num_threads()
