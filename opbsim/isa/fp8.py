"""FP8 e4m3 storage: exact decoding to fp32 and round-to-nearest-even encoding with saturation.

The format is OCP's E4M3 (OCP 8-bit Floating Point Specification (OFP8), revision 1.0, 2023,
section 5.1; the "e4m3fn" of PyTorch and ml_dtypes): a sign bit S, a 4-bit exponent E (bias 7) and a
3-bit mantissa M. E = 0 encodes the subnormals (-1)^S * M/8 * 2^-6, down to 2^-9; E = 1..15 encodes
(-1)^S * (1 + M/8) * 2^(E-7); the two patterns S.1111.111 are NaN and there are no infinities, so the
largest finite magnitude is S.1111.110 = 1.75 * 2^8 = 448. Every e4m3 value is exact in bf16 and fp32.

Encoding (fp32 -> e4m3), the one rounding into fp8:
- round to nearest, ties to even, on the e4m3 grid (subnormals kept: |x| <= 2^-10 rounds to a signed
  zero, the tie 2^-10 to even, i.e. to zero);
- saturation: a finite |x| above 448 and +-inf give +-448. This is the conversion of the hardware
  (PTX ``cvt.rn.satfinite.e4m3x2.f32``, CUDA ``__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3)``)
  and what checkpoint and serving quantizers do by clamping to +-448 before the cast (vLLM's
  ``scaled_fp8_quant``); PyTorch's plain ``.to(torch.float8_e4m3fn)`` differs only there: it gives NaN
  for |x| > 464 (c10/util/Float8_e4m3fn.h) and agrees for every |x| <= 464;
- NaN gives the canonical e4m3 NaN 0x7F whatever its sign (the ISA's canonical-NaN rule).
"""

from __future__ import annotations

import numpy as np

__all__ = ["FP8_MAX", "FP8_NAN_BITS", "FP8_DECODE_F32", "FP8_TO_BF16_BITS", "fp8_widen", "fp8_bits"]

FP8_MAX = 448.0
FP8_NAN_BITS = 0x7F


def _decode_table() -> np.ndarray:
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    e, m = (codes >> 3) & 0xF, codes & 0x7
    mag = np.where(e == 0, m / 8.0 * 2.0**-6, (1.0 + m / 8.0) * np.exp2(e - 7.0))
    mag = np.where((e == 15) & (m == 7), np.nan, mag)
    return (sign * mag).astype(np.float32)


FP8_DECODE_F32: np.ndarray = _decode_table()
"""The fp32 value of every e4m3 code (256 entries; 0x7F and 0xFF are NaN)."""
FP8_DECODE_F32.flags.writeable = False

FP8_TO_BF16_BITS: np.ndarray = (FP8_DECODE_F32.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
"""The bf16 bit pattern of every e4m3 code: exact (each e4m3 value's fp32 bits end in 16+ zero bits)."""
FP8_TO_BF16_BITS.flags.writeable = False
assert not np.any(FP8_DECODE_F32.view(np.uint32) & np.uint32(0xFFFF)), "e4m3 values are exact in bf16"


def fp8_widen(bits) -> np.ndarray:
    """float32 values of e4m3 codes (uint8); exact."""
    return FP8_DECODE_F32[np.asarray(bits, dtype=np.uint8)]


def fp8_bits(x) -> np.ndarray:
    """float32 ``x`` encoded as e4m3 codes (uint8): RNE, saturating to +-448, NaN -> 0x7F.

    The rounding is done in float64, where it is exact: the clamped magnitude divided by the grid
    spacing 2^(max(e, -6) - 3) (e = floor(log2 |x|), from ``np.frexp``) is rounded half to even by ``np.rint``.
    """
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # signalling NaN payloads; NaN is handled below
        a = np.minimum(np.abs(x.astype(np.float64)), FP8_MAX)
    nan = np.isnan(x)
    a = np.where(nan, 0.0, a)
    e = np.frexp(a)[1] - 1  # floor(log2 a), exact (0 for a = 0, which any spacing keeps at 0)
    q = np.ldexp(1.0, np.maximum(e, -6) - 3)
    r = np.rint(a / q) * q  # on the grid; a carry to the next binade stays exact
    # the code of a grid value: subnormals and zero are r / 2^-9; normals (1 + M/8) 2^(E-7)
    re = np.frexp(r)[1] - 1
    normal = r >= 2.0**-6
    code = np.where(normal, (re + 7) * 8 + (np.ldexp(r, -re) - 1.0) * 8, r * 2.0**9)
    code = code.astype(np.uint8) | np.where(np.signbit(x), np.uint8(0x80), np.uint8(0))
    return np.where(nan, np.uint8(FP8_NAN_BITS), code).astype(np.uint8).reshape(x.shape)
