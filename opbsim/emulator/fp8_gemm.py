"""The executor's block-scaled fp8 GEMM, bit-exact to numerics_fp8.gemm_fp8, on the exact GEMM's
register tiles (gemm_tiles.fp8_blocks_par).

Every e4m3 value is exact in bf16 and fp32 (isa/fp8.py), so activations are held as bf16 bits (e4m3
codes through a 256-entry table) and packed like the bf16 GEMM's; each 16-column weight panel is
decoded per k block straight into the tiles' k-major fp32 layout. A k block's partial sums are the
tiles' chain from +0 in k order (an ``fmul`` then an ``fadd`` per term, never contracted); the
promotion acc = acc + ((sa * sb) * p) follows in block order, in fp32 steps without fast-math.
"""

from __future__ import annotations

import numpy as np

from opbsim.emulator.gemm_tiles import fp8_blocks_par, fp8_blocks_ser
from opbsim.isa.fp8 import FP8_DECODE_F32, FP8_TO_BF16_BITS

__all__ = ["gemm_fp8"]

_SERIAL_FLOPS = 1 << 20  # below this, the calling thread beats the thread pool's overhead (as kernels.py)


def gemm_fp8(a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray, block_k: int, block_n: int) -> np.ndarray:
    """[M, K] x [K, N] -> [M, N] float32 as numerics_fp8.gemm_fp8: a raw bf16 (uint16) or e4m3 (uint8),
    b raw e4m3 (any strides), sa [M, KB] and sb [KB, NB] float32 values."""
    m, n = a.shape[0], b.shape[1]
    out = np.zeros((m, n), dtype=np.float32)
    if m and n and a.shape[1]:
        a16 = a if a.dtype == np.uint16 else FP8_TO_BF16_BITS[a]
        run = fp8_blocks_ser if 2 * m * n * a.shape[1] < _SERIAL_FLOPS else fp8_blocks_par
        with np.errstate(all="ignore"):
            run(a16, b, FP8_DECODE_F32, np.ascontiguousarray(sa, dtype=np.float32),
                           np.ascontiguousarray(sb, dtype=np.float32), int(block_k), int(block_n), out)
    return out
