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

from opbsim.emulator.tile_kernel import LANES, pack16, tile

__all__ = ["gemm_bf16", "gather_rows", "scatter_add_rows"]

_OPTS = dict(error_model="numpy", cache=True, nogil=True)
_KB_MAX = 4096  # deepest k block: its 16-column B panel (256 KiB fp32) stays in L2 while A streams
_MC = 512  # rows of a work item
_SERIAL_FLOPS = 1 << 20  # below this, a serial kernel beats the thread-pool overhead
_T16, _T8, _T4, _T2, _T1 = (tile(r) for r in (16, 8, 4, 2, 1))


@njit(**_OPTS)
def _pack_a(a, mb, ap):
    """ap[(mb*K + k)*16 + i] = fp32 bits of a[16*mb + i, k]; rows past M are zero."""
    m, k_dim = a.shape
    apu = ap.view(np.uint32)
    base = mb * k_dim * LANES
    rows = min(LANES, m - mb * LANES)
    done = 0
    if rows == LANES and a.strides[1] == 2:  # sixteen rows, k contiguous: transposed in registers
        s0 = a.strides[0] // 2
        pack16(a, mb * LANES * s0, s0, k_dim // LANES, apu, base)
        done = k_dim - k_dim % LANES
    for k in range(done, k_dim):
        for i in range(rows):
            apu[base + k * LANES + i] = np.uint32(a[mb * LANES + i, k]) << np.uint32(16)
        for i in range(rows, LANES):
            apu[base + k * LANES + i] = 0


@njit(**_OPTS)
def _pack_b(b, k0, kc, n0, nw, bp):
    """bp[16*k + j] = fp32 bits of b[k0 + k, n0 + j] for k < kc, j < nw; zero for j >= nw."""
    bpu = bp.view(np.uint32)
    done = 0
    if nw == LANES and b.strides[0] == 2:  # a transposed weight view: transposed in registers
        s1 = b.strides[1] // 2
        pack16(b, k0 + n0 * s1, s1, kc // LANES, bpu, 0)
        done = kc - kc % LANES
    for k in range(done, kc):
        for j in range(nw):
            bpu[k * LANES + j] = np.uint32(b[k0 + k, n0 + j]) << np.uint32(16)
        for j in range(nw, LANES):
            bpu[k * LANES + j] = 0


@njit(**_OPTS)
def _rows(ap, k_dim, k0, kc, bp, c, ldc, m0, m1, n0, nw):
    """Rows m0..m1-1 of C, columns n0..n0+nw-1, += their k block: 16-row tiles, then 8, 4, 2, 1."""
    i = m0
    while i < m1:
        left = m1 - i
        ao = ((i // LANES) * k_dim + k0) * LANES + i % LANES
        co = i * ldc + n0
        if left >= 16:
            _T16(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 16
        elif left >= 8:
            _T8(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 8
        elif left >= 4:
            _T4(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 4
        elif left >= 2:
            _T2(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 2
        else:
            _T1(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 1


@njit(**_OPTS)
def _item(a, b, ap, c, mc, nc, kb, item):
    """One work item: rows [m0, m0 + mc) x columns [c0, c0 + nc) of C; per k block in order, per
    16-column B panel: pack the panel, run every row tile of the item over it."""
    m, k_dim = a.shape
    n = b.shape[1]
    n_nc = (n + nc - 1) // nc
    m0 = (item // n_nc) * mc
    m1 = min(m, m0 + mc)
    c0 = (item % n_nc) * nc
    c1 = min(n, c0 + nc)
    bp = np.empty(kb * LANES, np.float32)
    for k0 in range(0, k_dim, kb):
        kc = min(kb, k_dim - k0)
        for n0 in range(c0, c1, LANES):
            nw = min(LANES, c1 - n0)
            _pack_b(b, k0, kc, n0, nw, bp)
            _rows(ap, k_dim, k0, kc, bp, c, n, m0, m1, n0, nw)


# Two drivers, not one function compiled twice: numba's cache keys a file by the function's name,
# so a serial and a parallel compilation of one function would load each other's code.
@njit(parallel=True, **_OPTS)
def _blocked_par(a, b, c, mc, nc, kb):
    """c (acc flattened) += a x b: A packed once (parallel over 16-row blocks), then the work items."""
    m, k_dim = a.shape
    n_mb = (m + LANES - 1) // LANES
    ap = np.empty(n_mb * k_dim * LANES, np.float32)
    for mb in prange(n_mb):
        _pack_a(a, mb, ap)
    for item in prange(((m + mc - 1) // mc) * ((b.shape[1] + nc - 1) // nc)):
        _item(a, b, ap, c, mc, nc, kb, item)


@njit(**_OPTS)
def _blocked_ser(a, b, c, mc, nc, kb):
    """_blocked_par on the calling thread."""
    m, k_dim = a.shape
    n_mb = (m + LANES - 1) // LANES
    ap = np.empty(n_mb * k_dim * LANES, np.float32)
    for mb in range(n_mb):
        _pack_a(a, mb, ap)
    for item in range(((m + mc - 1) // mc) * ((b.shape[1] + nc - 1) // nc)):
        _item(a, b, ap, c, mc, nc, kb, item)


def gemm_bf16(a: np.ndarray, b: np.ndarray, acc: np.ndarray) -> None:
    """acc [M,N] (float32, C-contiguous) += a [M,K] x b [K,N], a and b uint16 bf16 bits, any
    strides; each element as numerics.gemm: acc = acc + (a[m,k] * b[k,n]), k = 0..K-1 in order.
    """
    m, k_dim = a.shape
    n = b.shape[1]
    if m == 0 or n == 0 or k_dim == 0:
        return
    if not acc.flags.c_contiguous or acc.dtype != np.float32 or acc.shape != (m, n):
        raise ValueError(f"acc must be a C-contiguous float32 [{m}, {n}] array")
    flat = acc.reshape(-1)
    blocks = -(-k_dim // _KB_MAX)
    kb = LANES * -(-k_dim // (blocks * LANES))  # K in equal blocks, multiples of 16, at most _KB_MAX
    if 2 * m * n * k_dim < _SERIAL_FLOPS:
        _blocked_ser(a, b, flat, _MC, n, kb)
        return
    threads = numba.get_num_threads()
    panels = (n + LANES - 1) // LANES  # columns split so that each thread gets about four items
    nc = LANES * max(1, min(16, -(-panels // (4 * threads))))
    _blocked_par(a, b, flat, _MC, nc, kb)


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
