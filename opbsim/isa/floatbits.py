"""Bit-level binary32 / bfloat16 helpers: RNE rounding to bf16, canonical NaN, ulp measures.

bf16 values are held as ``uint16`` bit patterns (the upper half of a binary32). Widening bf16 to
fp32 is exact (a 16-bit shift). Rounding fp32 to bf16 is round-to-nearest-even on the 16 dropped
bits; it overflows to infinity like any IEEE rounding, keeps subnormals (no flush to zero) and
turns every NaN into the canonical quiet NaN. Every NaN an instruction computes is stored as the
canonical NaN of its dtype, whatever the payload the host arithmetic produced, so results agree
bit for bit between numpy, CUDA (whose NaN is 0x7FFFFFFF) and RTL.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "F32_CANONICAL_NAN_BITS",
    "BF16_CANONICAL_NAN_BITS",
    "f32",
    "f32_bits",
    "f32_from_bits",
    "bf16_bits",
    "bf16_widen",
    "round_bf16",
    "canonical_f32",
    "ulp_f32",
    "ulp_error",
]

F32_CANONICAL_NAN_BITS = 0x7FC00000
BF16_CANONICAL_NAN_BITS = 0x7FC0

_FMAX = float(np.finfo(np.float32).max)
_F32_NAN = np.array(F32_CANONICAL_NAN_BITS, dtype=np.uint32).view(np.float32)[()]


def f32(x) -> np.ndarray:
    """``x`` as a float32 array (a copy only when a conversion is needed)."""
    return np.asarray(x, dtype=np.float32)


def f32_bits(x) -> np.ndarray:
    """The binary32 bit patterns of ``x`` (float32) as uint32."""
    return np.ascontiguousarray(f32(x)).view(np.uint32)


def f32_from_bits(bits) -> np.ndarray:
    """float32 values of uint32 bit patterns."""
    return np.ascontiguousarray(np.asarray(bits, dtype=np.uint32)).view(np.float32)


def canonical_f32(x) -> np.ndarray:
    """``x`` as float32 with every NaN replaced by the canonical quiet NaN 0x7FC00000."""
    x = np.array(x, dtype=np.float32, copy=True)
    x[np.isnan(x)] = _F32_NAN
    return x


def bf16_bits(x) -> np.ndarray:
    """Round float32 ``x`` to bfloat16, nearest-even; returns uint16 bit patterns.

    Exactly: ``(bits + 0x7FFF + ((bits >> 16) & 1)) >> 16`` for every non-NaN input, which
    rounds ties to even, carries into the exponent (up to infinity) and keeps subnormals.
    NaN gives 0x7FC0 whatever its sign and payload.
    """
    x = f32(x)
    u = f32_bits(x).astype(np.uint32)
    nan = np.isnan(x)
    u = np.where(nan, np.uint32(0), u)  # keep the addition below from wrapping on NaN patterns
    r = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    r = np.where(nan, np.uint32(BF16_CANONICAL_NAN_BITS), r)
    return r.astype(np.uint16).reshape(x.shape)


def bf16_widen(bits) -> np.ndarray:
    """float32 values of bf16 bit patterns (uint16); exact."""
    b = np.asarray(bits, dtype=np.uint16)
    return np.left_shift(b, np.uint32(16), dtype=np.uint32).view(np.float32)  # one pass, no uint32 copy first


def round_bf16(x) -> np.ndarray:
    """float32 ``x`` rounded to the nearest bf16 value, returned widened to float32."""
    return bf16_widen(bf16_bits(x))


def ulp_f32(ref) -> np.ndarray:
    """The binary32 ulp at float64 ``ref``: 2^(e - 23), e = max(floor(log2|ref|), -126).

    The unit in which the errors of docs/numerics.md are stated (the spacing of float32 values
    at the exact result; for subnormal results it is 2^-149).
    """
    a = np.abs(np.asarray(ref, dtype=np.float64))
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.where(a > 0, np.maximum(e, -126.0), -126.0)
    return np.exp2(e - 23.0)


def ulp_error(y, ref) -> np.ndarray:
    """|y - ref| in float32 ulps of the exact float64 value ``ref`` (float64 result).

    Equal values (infinities included) and two NaNs count as 0. An infinite ``y`` is measured as
    +-2^128, the value IEEE rounding gives overflow (so an overflow just past FLT_MAX is within
    half an ulp, as correct rounding requires).
    """
    y = np.asarray(y, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    same = (y == ref) | (np.isnan(y) & np.isnan(ref))
    top = 2.0**128
    yc = np.clip(y, -top, top)
    rc = np.clip(ref, -top, top)
    err = np.abs(yc - rc) / ulp_f32(np.clip(rc, -_FMAX, _FMAX))
    return np.where(same, 0.0, err)
