"""numerics.gemm at compiled speed, for the numerics reference: the same k-ordered sums,
vectorised over a tile of outputs instead of over the whole output.

numerics.gemm computes ``out += a[:, k, None] * b[None, k, :]`` for k = 0..K-1: every output
element sees its products in k order, each rounded to fp32 before it is added. Here the loop
order is the same -- k outer, outputs inner -- but over one tile of outputs at a time (``_ROWS``
rows by ``_COLS`` columns of partial sums, which stay in the L2 cache) instead of streaming the
whole output through memory once per k. A block of ``_KBLOCK`` rows of the tile's B columns is
widened into an fp32 buffer; then each pass over a row of the tile adds the products of four
consecutive k, one after another, to each partial sum (so a partial sum is loaded and stored
once per four k, not once per k). numba compiles without ``fastmath``: no FMA contraction, no
reassociation; the inner loop is vectorised across independent outputs only, and x86's FTZ/DAZ
flags stay off (subnormals kept). NaN payloads aside (every NaN is canonical once stored, as an
instruction stores it), the results are numerics.gemm's, bit for bit.

It shares no code with the executor's kernels (emulator/kernels.py, which it checks) and tiles
differently (no per-4-row register tiles, no 64-column panels). tests/unit/emulator/
test_ordered_gemm.py holds it to numerics.gemm bit for bit, adversarial values included.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from opbsim.isa import numerics as N

__all__ = ["gemm", "gemm_bf16"]

_OPTS = dict(error_model="numpy", cache=True, nogil=True)
_ROWS = 64  # rows of an output tile
_COLS = 512  # columns of an output tile: 64 x 512 fp32 partial sums = 128 KiB
_KBLOCK = 64  # rows of B read into the tile's buffer at a time (64 x 512 x 4 B = 128 KiB)
_SERIAL_FLOPS = 1 << 21  # below this a product runs on one thread (the pool's start costs more)


def _tiles(a, b, out, shift, by_columns):
    """out[n] += a[n] x b[n] for every n of the batch: out [B, M, N] fp32 (the starting sums),
    a [B, M, K] fp32, b [B, K, N] uint16 bf16 bits (``shift`` 16) or uint32 fp32 bits (0).
    ``by_columns``: b's columns are contiguous (a transposed view), so a block of B is read
    column by column; else row by row. Either way it is read into ``blk`` before it is used."""
    nb, m, k_dim = a.shape
    n = b.shape[2]
    row_tiles = (m + _ROWS - 1) // _ROWS
    col_tiles = (n + _COLS - 1) // _COLS
    per_batch = row_tiles * col_tiles
    for t in prange(nb * per_batch):
        z = t // per_batch
        i0 = ((t % per_batch) // col_tiles) * _ROWS
        j0 = (t % col_tiles) * _COLS
        h = min(_ROWS, m - i0)
        w = min(_COLS, n - j0)
        c = out[z, i0:i0 + h, j0:j0 + w].copy()
        blk = np.empty((_KBLOCK, w), np.uint32)
        blk_f32 = blk.view(np.float32)
        for k0 in range(0, k_dim, _KBLOCK):
            kw = min(_KBLOCK, k_dim - k0)
            if by_columns:
                for j in range(w):
                    for k in range(kw):
                        blk[k, j] = np.uint32(b[z, k0 + k, j0 + j]) << np.uint32(shift)
            else:
                for k in range(kw):
                    src = b[z, k0 + k, j0:j0 + w]
                    dst = blk[k]
                    for j in range(w):
                        dst[j] = np.uint32(src[j]) << np.uint32(shift)
            k = 0
            while k + 4 <= kw:  # four k per pass over a row of the tile, added in k order
                b0, b1, b2, b3 = blk_f32[k], blk_f32[k + 1], blk_f32[k + 2], blk_f32[k + 3]
                for i in range(h):
                    a0, a1 = a[z, i0 + i, k0 + k], a[z, i0 + i, k0 + k + 1]
                    a2, a3 = a[z, i0 + i, k0 + k + 2], a[z, i0 + i, k0 + k + 3]
                    ci = c[i]
                    for j in range(w):
                        ci[j] = (((ci[j] + a0 * b0[j]) + a1 * b1[j]) + a2 * b2[j]) + a3 * b3[j]
                k += 4
            while k < kw:
                bk = blk_f32[k]
                for i in range(h):
                    aik = a[z, i0 + i, k0 + k]
                    ci = c[i]
                    for j in range(w):
                        ci[j] = ci[j] + aik * bk[j]
                k += 1
        out[z, i0:i0 + h, j0:j0 + w] = c


_tiles_parallel = njit(parallel=True, **_OPTS)(_tiles)
_tiles_serial = njit(**_OPTS)(_tiles)


def _run(a, b, acc, shift: int) -> np.ndarray:
    a = np.asarray(a, np.float32)
    if a.shape[:-2] != b.shape[:-2] or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"gemm shapes {a.shape} x {b.shape}: inner or batch axes differ")
    lead, (m, k_dim), n = a.shape[:-2], a.shape[-2:], b.shape[-1]
    shape = (*lead, m, n)
    out = np.zeros(shape, np.float32) if acc is None else np.array(np.broadcast_to(acc, shape), np.float32)
    if out.size == 0 or k_dim == 0:
        return out
    flat = out.reshape(-1, m, n)  # a view: out is a new contiguous array
    kernel = _tiles_serial if 2 * out.size * k_dim < _SERIAL_FLOPS else _tiles_parallel
    b = b.reshape(-1, k_dim, n)
    by_columns = b.strides[2] != b.itemsize and b.strides[1] == b.itemsize
    kernel(a.reshape(-1, m, k_dim), b, flat, shift, by_columns)
    return out


def gemm(a, b, acc=None) -> np.ndarray:
    """``numerics.gemm(a, b, acc)``, bit for bit: a [..., M, K] and b [..., K, N] fp32 values,
    the leading (batch) axes equal; returns fp32 [..., M, N]."""
    return _run(a, N.f32(b).view(np.uint32), acc, 0)


def gemm_bf16(a, bits, acc=None) -> np.ndarray:
    """``numerics.gemm(a, widen(bits), acc)``, bit for bit, without widening B: ``bits`` holds B
    as bf16 bit patterns (uint16 [..., K, N], any strides; rows contiguous are fastest)."""
    bits = np.asarray(bits)
    if bits.dtype != np.uint16:
        raise TypeError(f"gemm_bf16 takes bf16 bit patterns (uint16), got {bits.dtype}")
    return _run(a, bits, acc, 16)
