"""Compiled kernels (numba) for the executor's hot instructions, bit-exact to isa/numerics.py.

Every kernel computes each output element with the same sequence of binary32 operations as the
definition: ``acc = acc + (a * b)`` for k = 0..K-1 in order, the product rounded before the add.
numba compiles without ``fastmath``, so LLVM neither contracts a multiply and an add into an FMA
nor reassociates a sum; the loops are vectorised across independent outputs only. Subnormals are
kept (numpy and numba leave the x86 FTZ/DAZ flags off).

GEMM operands stay bf16 (uint16 bit patterns) in memory, in any strided layout; each is widened
to fp32 once, while it is packed. The schedule (gemm_tiles.py compiles it):

- A is packed once into 16-row blocks, k-major (``ap[(block*K + k)*16 + row]``).
- C is cut into work items of up to 512 rows x ``nc`` columns (``nc`` a multiple of 16, chosen
  so each thread gets about four items); the items run in parallel (numba prange, static split).
- Within an item, K runs in equal blocks of at most 4096, in order. Per k block, per 16-column
  panel of B: the panel (kc x 16) is packed k-major, then every row tile of the item (16 rows,
  then 8, 4, 2, 1 for the rest) runs the register tile over it: the tile loads its 16 x 16 block
  of C once, accumulates all kc products in order in registers, and stores it once.

The k order of every element is therefore 0..K-1: a k block starts from the value the previous
block stored (an fp32 store, which rounds nothing). A panel whose k is contiguous in memory (a
transposed [N, K] weight; A row-major) is widened and transposed 16 x 16 in vector registers.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from opbsim.emulator.gemm_tiles import LANES, blocked_par, blocked_ser

__all__ = ["gemm_bf16", "gather_rows", "scatter_add_rows"]

_OPTS = dict(error_model="numpy", cache=True, nogil=True)
_KB_MAX = 4096  # deepest k block: its 16-column B panel (256 KiB fp32) stays in L2 while A streams
_MC = 512  # rows of a work item
_SERIAL_FLOPS = 1 << 20  # below this, a serial kernel beats the thread-pool overhead


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
        blocked_ser(a, b, flat, _MC, n, kb)
        return
    threads = numba.get_num_threads()
    panels = (n + LANES - 1) // LANES  # columns split so that each thread gets about four items
    nc = LANES * max(1, min(16, -(-panels // (4 * threads))))
    blocked_par(a, b, flat, _MC, nc, kb)


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
