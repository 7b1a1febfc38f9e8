"""The exact arithmetic of the fp8 instructions: the block-scaled GEMM and the quantization to e4m3.

Conventions are numerics.py's (fp32 steps rounded to nearest even, never fused, no flush to zero,
sums from +0 in index order); the e4m3 format and its rounding are isa/fp8.py's.

The block-scaled GEMM is the FP8 GEMM of DeepSeek-V3 (DeepSeek-V3 Technical Report, arXiv:2412.19437,
section 3.3: fine-grained quantization with 1 x 128 activation tiles and 128 x 128 weight blocks, and
"increasing accumulation precision": the tensor cores' partial sums over N_C = 128 elements are
promoted to fp32 registers, multiplied by the scaling factors and added there) as DeepGEMM implements it
(github.com/deepseek-ai/DeepGEMM, ``fp8_gemm``: ``final_accum += (scale_a * scale_b) * accum`` per
k block). The checkpoints' ``quantization_config`` names the weight blocks (``weight_block_size:
[128, 128]``); here both block sizes are operands of the instruction.
"""

from __future__ import annotations

import numpy as np

from opbsim.isa.floatbits import f32
from opbsim.isa.fp8 import FP8_MAX, fp8_bits

__all__ = ["gemm_fp8", "gemm_fp8_block", "quant", "act_quant", "ACT_QUANT_EPS", "blocks"]

ACT_QUANT_EPS = np.float32(1e-10)
"""The floor of a group's absolute maximum before act_quant divides it by 448: the ``eps`` of the
per-token-group fp8 quantization of SGLang and vLLM (``per_token_group_quant_fp8``, eps=1e-10), so
an all-zero group gets a finite scale and zero codes (fp32(1e-10))."""


def blocks(n: int, size: int) -> int:
    """How many blocks of ``size`` cover ``n`` (the last one may be partial)."""
    return -(-n // size)


def gemm_fp8_block(a, b) -> np.ndarray:
    """One k block's partial sums: p = +0; p = p + (a[..., :, k] * b[..., k, :]) for k in order (fp32)."""
    a, b = f32(a), f32(b)
    out = np.zeros(a.shape[:-1] + b.shape[-1:], dtype=np.float32)
    with np.errstate(all="ignore"):
        for k in range(a.shape[-1]):
            out += a[..., :, k, None] * b[..., None, k, :]
    return out


def gemm_fp8(a, b, sa, sb, block_k: int, block_n: int) -> np.ndarray:
    """[..., M, K] x [..., K, N] -> [..., M, N] fp32, a bf16 or e4m3 values, b e4m3 values (fp32 arrays).

    sa [..., M, KB] scales row m of a over k block j; sb [..., KB, NB] scales the (j, column block)
    block of b; KB = ceil(K / block_k), NB = ceil(N / block_n) (the last blocks may be partial).
      acc = +0
      for j = 0..KB-1:
        p = +0;  p = p + (a[m, k] * b[k, n])  for k = j*block_k .. min(K, (j+1)*block_k) - 1, in order
        s = sa[m, j] * sb[j, n // block_n]                         (fp32 mul)
        acc = acc + (s * p)                                        (fp32 mul, then fp32 add)
    Every product a * b is exact in fp32 (an 8-bit by a 4-bit significand, exponents in range), so only
    the sums and the scaling round. Unscaled activations: sa a stride-0 view of 1.0 (s = sb exactly).
    """
    a, b, sa, sb = f32(a), f32(b), f32(sa), f32(sb)
    k_dim, n = a.shape[-1], b.shape[-1]
    col_block = np.arange(n) // block_n
    acc = np.zeros(a.shape[:-1] + (n,), dtype=np.float32)
    with np.errstate(all="ignore"):
        for j in range(blocks(k_dim, block_k)):
            ks = slice(j * block_k, min(k_dim, (j + 1) * block_k))
            p = gemm_fp8_block(a[..., :, ks], b[..., ks, :])
            s = sa[..., :, j, None] * sb[..., None, j, col_block]
            acc = acc + (s * p)
    return acc


def quant(x, scale, group: int) -> np.ndarray:
    """e4m3 codes of x [..., H] divided by its group's scale: y[..., i] = e4m3(x[..., i] / scale[..., i // group]).

    scale [..., ceil(H / group)] fp32 (a per-tensor scale: a stride-0 view); the division is the
    correctly rounded fp32 one (as DeepSeek-V3's ``act_quant``: ``y = x / s``), the encoding isa/fp8.py's
    (RNE, saturating to +-448, NaN -> 0x7F). x / 0 saturates to +-448; 0 / 0 is NaN.
    """
    x, scale = f32(x), f32(scale)
    g = np.arange(x.shape[-1]) // group
    with np.errstate(all="ignore"):
        return fp8_bits(x / scale[..., g])


def act_quant(x, group: int) -> tuple[np.ndarray, np.ndarray]:
    """(e4m3 codes [..., H], fp32 scales [..., ceil(H / group)]): the dynamic quantization of activations
    in 1 x ``group`` tiles (DeepSeek-V3 Technical Report, section 3.3; SGLang / vLLM
    ``per_token_group_quant_fp8``):
      a = max over the group of |x|        (exact; NaN if any element is NaN)
      s = max(a, ACT_QUANT_EPS) / 448      (fp32 divide; NaN stays NaN, as the canonical 0x7FC00000)
      y = quant(x, s, group)               (x / s rounded to e4m3, saturating)
    A group's largest magnitude maps to +-448 or its neighbour (x / s is one division away from 448).
    """
    x = f32(x)
    h = x.shape[-1]
    g = blocks(h, group)
    padded = np.full(x.shape[:-1] + (g * group,), np.float32(0.0), dtype=np.float32)
    padded[..., :h] = np.abs(x)
    tiles = padded.reshape(x.shape[:-1] + (g, group))
    amax = tiles.max(axis=-1)  # NaN propagates
    with np.errstate(all="ignore"):
        scale = (np.maximum(amax, ACT_QUANT_EPS) / np.float32(FP8_MAX)).astype(np.float32)
    scale = np.where(np.isnan(scale), np.float32(np.nan), scale)  # the canonical NaN, whatever the payload
    return quant(x, scale, group), scale
