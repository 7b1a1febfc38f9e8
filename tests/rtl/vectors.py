"""Stimulus for the floating-point units: the contract's edge cases and random words biased toward
the places where rounding, cancellation, overflow and underflow happen.

Everything is built from bit patterns (numpy uint16 for bf16, uint32 for fp32); no value is
computed here by a float model: references come from opbsim.isa.numerics.
"""

from __future__ import annotations

import numpy as np

from opbsim.isa.floatbits import bf16_bits, f32_bits

BF16_EDGES = np.array([
    0x0000, 0x8000,  # +0, -0
    0x0001, 0x8001, 0x007F, 0x0040,  # subnormals: smallest, largest, 2^-127
    0x0080, 0x8080, 0x00FF,  # smallest normals
    0x3F80, 0xBF80, 0x3F81, 0x3FFF, 0x4000, 0x3F00,  # 1, -1, 1+2^-7, ~2, 2, 0.5
    0x5F80, 0x5F7F, 0x1F80,  # 2^64, just under 2^64, 2^-64: products at the overflow/underflow edges
    0x7F7F, 0xFF7F, 0x7F00,  # max finite, -max, 2^127
    0x7F80, 0xFF80,  # +inf, -inf
    0x7FC0, 0xFFC0, 0x7F81, 0x7FFF,  # quiet NaNs of both signs, signalling NaN, all-ones payload
], dtype=np.uint16)

F32_EDGES = np.array([
    0x00000000, 0x80000000,  # +0, -0
    0x00000001, 0x80000001, 0x007FFFFF, 0x00400000,  # subnormals
    0x00800000, 0x80800000,  # smallest normals
    0x3F800000, 0xBF800000, 0x3F800001, 0x4B800000,  # 1, -1, 1+ulp, 2^24
    0x33800000, 0x34000000,  # 2^-24 (half an ulp of 1), 2^-23
    0x7F7FFFFF, 0xFF7FFFFF, 0x7F000000,  # max finite, -max, 2^127
    0x7F800000, 0xFF800000,  # +inf, -inf
    0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF,  # NaNs
], dtype=np.uint32)


def _bf16_exact(values: np.ndarray) -> np.ndarray:
    """bf16 patterns of float64 values that bf16 holds exactly (checked)."""
    bits = bf16_bits(np.asarray(values, dtype=np.float32))
    back = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    assert np.array_equal(back, values), "stimulus value not exact in bf16"
    return bits


def random_bf16(rng: np.random.Generator, n: int) -> np.ndarray:
    """bf16 words: 1/4 uniform over all patterns, 1/2 near 1.0 (exponents 127 +- 24), 1/4 at the
    exponent extremes (subnormal / near-infinite)."""
    kind = rng.integers(0, 4, n)
    uniform = rng.integers(0, 1 << 16, n)
    exp_mid = rng.integers(103, 152, n)
    exp_ext = np.where(rng.integers(0, 2, n) == 0, rng.integers(0, 12, n), rng.integers(244, 256, n))
    exponent = np.where(kind == 2, exp_ext, exp_mid)
    crafted = (rng.integers(0, 2, n) << 15) | (exponent << 7) | rng.integers(0, 128, n)
    return np.where(kind == 0, uniform, crafted).astype(np.uint16)


def random_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """fp32 words, distributed like ``random_bf16`` but with all 23 fraction bits random."""
    kind = rng.integers(0, 4, n)
    uniform = rng.integers(0, 1 << 32, n, dtype=np.uint64)
    exp_mid = rng.integers(103, 152, n)
    exp_ext = np.where(rng.integers(0, 2, n) == 0, rng.integers(0, 12, n), rng.integers(244, 256, n))
    exponent = np.where(kind == 2, exp_ext, exp_mid).astype(np.uint64)
    crafted = (rng.integers(0, 2, n, dtype=np.uint64) << 31) | (exponent << 23) | rng.integers(0, 1 << 23, n,
                                                                                             dtype=np.uint64)
    return np.where(kind == 0, uniform, crafted).astype(np.uint32)


def near(rng: np.random.Generator, words: np.ndarray, spread: int) -> np.ndarray:
    """fp32 words whose exponents lie within ``spread`` of those of ``words`` (finite, nonzero
    entries), random sign and fraction: addends that overlap, cancel or just touch the sticky bit."""
    words = np.asarray(words, dtype=np.uint32)
    n = words.size
    exponent = ((words >> 23) & 0xFF).astype(np.int64) + rng.integers(-spread, spread + 1, n)
    exponent = np.clip(exponent, 0, 254).astype(np.uint32)
    out = (rng.integers(0, 2, n, dtype=np.uint32) << 31) | (exponent << 23)
    # half of them keep the fraction's high bits, so the sum cancels deeply
    fraction = rng.integers(0, 1 << 23, n, dtype=np.uint32)
    keep = rng.integers(0, 2, n) == 1
    fraction = np.where(keep, (words & 0x7FFF00) | (fraction & 0xFF), fraction).astype(np.uint32)
    return out | fraction


def mac_ties(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, acc) whose sum acc + a*b lies exactly halfway between two fp32 values.

    The product is (2j + 1) * 2^(E - 24) with E the exponent of acc, an odd multiple of half an
    ulp of acc; half of the cases instead make the product itself an odd multiple of 2^-150, a tie
    on the subnormal grid (with acc = +-0).
    """
    j = rng.integers(0, 64, n)
    odd = (2 * j + 1).astype(np.float64)
    e_acc = rng.integers(-80, 100, n)  # keeps a and b normal bf16 values
    split = rng.integers(-20, 20, n)
    a = odd * np.exp2((e_acc - 24 - split).astype(np.float64))
    b = np.exp2(split.astype(np.float64)) * np.where(rng.integers(0, 2, n) == 1, -1.0, 1.0)
    acc_bits = ((rng.integers(0, 2, n) << 31) | ((e_acc + 127) << 23) | rng.integers(0, 1 << 23, n)).astype(np.uint32)
    sub = rng.integers(0, 2, n) == 1
    a = np.where(sub, odd * 2.0**-75, a)
    b = np.where(sub, 2.0**-75 * np.sign(b), b)
    acc_bits = np.where(sub, (acc_bits & 0x80000000).astype(np.uint32), acc_bits).astype(np.uint32)
    return _bf16_exact(a), _bf16_exact(b), acc_bits


def max_plus_half_ulp() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """FLT_MAX + half its ulp (2^103): a tie whose even neighbour is 2^128, so it overflows to +inf;
    and the same at FLT_MAX - ulp/2 (0x7F7FFFFE + 2^103 ties to the even 0x7F7FFFFE)."""
    a = _bf16_exact(np.array([2.0**52, 2.0**52, -(2.0**52)]))
    b = _bf16_exact(np.array([2.0**51, 2.0**51, 2.0**51]))
    acc = np.array([0x7F7FFFFF, 0x7F7FFFFE, 0xFF7FFFFF], dtype=np.uint32)
    return a, b, acc


def as_f32_words(values) -> np.ndarray:
    """fp32 patterns of values (a convenience for hand-written stimulus)."""
    return f32_bits(np.asarray(values, dtype=np.float32)).copy()


def ordinary_bf16(rng: np.random.Generator, n: int, spread: int = 8) -> np.ndarray:
    """bf16 words of either sign with exponents within ``spread`` of 1.0 (so sums of their
    products overlap, cancel and round at every step); 1 in 16 drawn by ``random_bf16`` instead."""
    exponent = rng.integers(127 - spread, 127 + spread + 1, n)
    words = (rng.integers(0, 2, n) << 15) | (exponent << 7) | rng.integers(0, 128, n)
    return np.where(rng.integers(0, 16, n) == 0, random_bf16(rng, n), words).astype(np.uint16)
