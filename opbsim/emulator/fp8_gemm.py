"""The executor's block-scaled fp8 GEMM, bit-exact to numerics_fp8.gemm_fp8 at the bf16 GEMM's speed.

Every e4m3 value is exact in bf16 (isa/fp8.py), so each k block's partial sums are the bf16 GEMM
kernel's (kernels.gemm_bf16: acc = acc + (a * b) in k order from +0) on the operands' bf16 bit
patterns, one 256-entry table lookup per element; the promotion (s = sa * sb; acc = acc + (s * p))
is then the same fp32 steps as the definition, vectorised over the outputs.
"""

from __future__ import annotations

import numpy as np

from opbsim.emulator import kernels
from opbsim.isa.fp8 import FP8_TO_BF16_BITS
from opbsim.isa.numerics_fp8 import blocks

__all__ = ["gemm_fp8", "as_bf16_bits"]


def as_bf16_bits(raw: np.ndarray) -> np.ndarray:
    """bf16 bit patterns of raw bf16 (uint16, as is) or e4m3 (uint8, exact) storage."""
    return raw if raw.dtype == np.uint16 else FP8_TO_BF16_BITS[raw]


def gemm_fp8(a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray, block_k: int, block_n: int) -> np.ndarray:
    """[M, K] x [K, N] -> [M, N] float32 as numerics_fp8.gemm_fp8: a raw bf16 or e4m3, b raw e4m3 (any
    strides), sa [M, KB] and sb [KB, NB] float32 values."""
    m, k_dim = a.shape
    n = b.shape[1]
    acc = np.zeros((m, n), dtype=np.float32)
    a16 = as_bf16_bits(a)
    col_block = np.arange(n) // block_n
    p = np.empty((m, n), dtype=np.float32)
    with np.errstate(all="ignore"):
        for j in range(blocks(k_dim, block_k)):
            ks = slice(j * block_k, min(k_dim, (j + 1) * block_k))
            p.fill(0.0)
            kernels.gemm_bf16(a16[:, ks], FP8_TO_BF16_BITS[b[ks, :]], p)
            s = sa[:, j, None] * sb[j, col_block][None, :]
            acc += s * p
    return acc
