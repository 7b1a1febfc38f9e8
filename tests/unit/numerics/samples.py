"""Input generators that reach the corners of binary32 / bf16: subnormals, signed zeros,
infinities, NaN, the largest finite values and exact bf16 rounding ties."""

from __future__ import annotations

import numpy as np

from opbsim.isa.floatbits import bf16_bits, f32_from_bits

__all__ = ["special_f32", "special_bf16_bits", "bf16_values"]

_FIXED = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0**-149, -(2.0**-149), 2.0**-126, 2.0**-133,
     float(np.finfo(np.float32).max), -float(np.finfo(np.float32).max), 88.7, -88.7, 89.0, -104.0, 0.5],
    dtype=np.float32,
)


def special_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """n float32 values: about half ordinary (magnitudes 1e-3..1e3), the rest corner cases."""
    kinds = rng.integers(0, 6, n)
    out = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(np.float32)
    sign = rng.integers(0, 2, n, dtype=np.uint32) << 31
    subnormal = f32_from_bits(rng.integers(1, 1 << 23, n, dtype=np.uint32) | sign)
    tie_bits = (rng.integers(0, 1 << 16, n, dtype=np.uint32) << 16) | np.uint32(0x8000)
    ties = f32_from_bits(tie_bits & np.uint32(0xBFFFFFFF))  # a bf16 rounding tie, finite
    raw = f32_from_bits(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32))
    fixed = _FIXED[rng.integers(0, _FIXED.size, n)]
    out = np.where(kinds == 1, subnormal, out)
    out = np.where(kinds == 2, ties, out)
    out = np.where(kinds == 3, raw, out)
    out = np.where(kinds == 4, fixed, out)
    return out.astype(np.float32)


def special_bf16_bits(rng: np.random.Generator, n: int) -> np.ndarray:
    """n bf16 bit patterns covering the same corners (subnormal bf16, inf, NaN, max)."""
    kinds = rng.integers(0, 4, n)
    ordinary = bf16_bits((rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2, n)).astype(np.float32))
    raw = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    sub = (rng.integers(1, 128, n) | (rng.integers(0, 2, n) << 15)).astype(np.uint16)
    fixed = np.array([0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F7F, 0xFF7F, 0x0001, 0x3F80],
                     dtype=np.uint16)[rng.integers(0, 9, n)]
    return np.choose(kinds, [ordinary, raw, sub, fixed]).astype(np.uint16)


def bf16_values(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    """Ordinary bf16 bit patterns of normal(0, scale) values."""
    return bf16_bits((rng.standard_normal(shape) * scale).astype(np.float32))
