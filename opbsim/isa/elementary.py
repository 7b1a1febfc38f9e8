"""Elementary functions of the ISA as fixed sequences of correctly rounded binary32 operations.

Every step below is one IEEE-754 binary32 operation rounded to nearest even: add, subtract,
multiply, divide, square root, round-to-integral (``rint``), or an exact operation (negation,
comparison, selection, scaling by a power of two built from bits). No fused multiply-add, no
library ``expf``/``sinf``. A CUDA kernel doing the same steps with ``__fadd_rn``, ``__fmul_rn``,
``__fdiv_rn``, ``__fsqrt_rn`` and ``rintf``, or an RTL datapath with those units, produces the
same bits. Constants are the binary32 values written here (each literal is rounded to binary32
once, when the module is loaded).

exp: Cody-Waite reduction by ln 2 and the degree-7 polynomial of Cephes ``expf`` (S. L. Moshier,
public domain); sin/cos: reduction by pi/2 in three parts and the Cephes ``sinf``/``cosf``
polynomials on [-pi/4, pi/4]. The rotary frequency table is a host constant, correctly rounded.
"""

from __future__ import annotations

import functools
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np

from opbsim.isa.floatbits import F32_CANONICAL_NAN_BITS, f32, f32_from_bits

__all__ = ["exp", "exp_scaled", "rsqrt", "sincos", "rope_inv_freq", "nearest_f32", "EXP_LO", "EXP_HI"]

_c = np.float32
_NAN = f32_from_bits(np.uint32(F32_CANONICAL_NAN_BITS))[()]

EXP_LO = _c(-104.0)  # exp(-104) < 2^-150: rounds to +0
EXP_HI = _c(89.0)  # exp(89) > FLT_MAX: overflows to +inf
_LOG2E = _c(1.44269504088896341)
_LN2_HI = _c(0.693359375)  # 355/512: n * _LN2_HI is exact for |n| < 2^15
_LN2_LO = _c(-2.12194440e-4)  # ln 2 - _LN2_HI
_EXP_P = tuple(_c(v) for v in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                               4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1))
_ONE = _c(1.0)
_HALF = _c(0.5)


def _pow2(e: np.ndarray) -> np.ndarray:
    """2^e as float32 for integer e in [-126, 127], built from bits (exact)."""
    return f32_from_bits(((e.astype(np.int64) + 127) << 23).astype(np.uint32))


def exp(x) -> np.ndarray:
    """e^x, binary32.

    Steps, for each element (NaN in gives the canonical NaN; everything else below):
      1. c = min(max(x, -104), 89)                          (exact; +-inf saturate here)
      2. n = rint(c * LOG2E)                                 (fp32 mul, round half to even)
      3. r = (c - n * LN2_HI) - n * LN2_LO                   (4 fp32 ops, left to right)
      4. p = P0; p = p * r + Pi for P1..P5                   (separate mul and add, Horner)
      5. y = ((p * (r * r)) + r) + 1                         (fp32 ops in this order)
      6. h = floor(n / 2); y = (y * 2^h) * 2^(n - h)         (two fp32 muls by exact powers of 2)
    Step 6 keeps y * 2^h normal, so the only rounding into the subnormal range is the last
    multiply, and overflow to +inf happens there too. exp(0) = 1 exactly, exp(-inf) = +0,
    exp(+inf) = +inf, subnormal inputs give 1. Measured error: docs/numerics.md.
    """
    return exp_scaled(x, 0)


def exp_scaled(x, s: int) -> np.ndarray:
    """e^x * 2^s (0 <= s <= 64): the steps of ``exp`` with the lower clamp of step 1 at -104 - s
    and n + s in place of n in step 6; s = 0 is ``exp``.

    ``silu`` uses s = 64 so that e^x of a very negative x keeps its 24 bits.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return _exp(f32(x), int(s))


def _exp(x: np.ndarray, scale_pow2: int) -> np.ndarray:
    c = np.minimum(np.maximum(x, EXP_LO - _c(scale_pow2)), EXP_HI)
    n = np.rint(c * _LOG2E)
    r = c - n * _LN2_HI
    r = r - n * _LN2_LO
    p = np.full_like(r, _EXP_P[0])
    for coef in _EXP_P[1:]:
        p = p * r
        p = p + coef
    y = p * (r * r)
    y = y + r
    y = y + _ONE
    ni = np.where(np.isnan(n), 0, n).astype(np.int64) + scale_pow2
    h = ni >> 1  # floor(n / 2)
    y = (y * _pow2(h)) * _pow2(ni - h)
    return np.where(np.isnan(x), _NAN, y).astype(np.float32)


def rsqrt(x) -> np.ndarray:
    """1 / sqrt(x) as two correctly rounded fp32 steps: s = sqrt(x); y = 1 / s.

    rsqrt(+0) = +inf, rsqrt(-0) = -inf (sqrt(-0) = -0), rsqrt(+inf) = +0, negative or NaN input
    gives the canonical NaN, subnormal inputs give finite results (no flush to zero).
    """
    x = f32(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        y = _ONE / np.sqrt(x)
    return np.where(np.isnan(y), _NAN, y).astype(np.float32)


_TWO_OVER_PI = _c(0.636619772367581343)
_TWO_M12 = _c(2.0**-12)
_TWO_P12 = _c(2.0**12)
# pi/2 = P1 + P2 + P3 + P4 + 8.3e-20; P1..P3 have at most 12 significant bits, so their products
# with 12-bit integers are exact in binary32.
_PIO2 = tuple(_c(float.fromhex(h)) for h in ("0x1.92p+0", "0x1.fb4p-12", "0x1.444p-24", "0x1.68c234p-39"))
_SIN_P = tuple(_c(v) for v in (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1))
_COS_P = tuple(_c(v) for v in (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2))


def sincos(a) -> tuple[np.ndarray, np.ndarray]:
    """(sin a, cos a) of binary32 angles a, in radians.

    Steps, for each finite element (a non-finite angle gives the canonical NaN for both):
      1. k = rint(a * TWO_OVER_PI);  q = k mod 4             (fp32 mul, round half to even)
      2. kh = rint(k * 2^-12) * 2^12;  kl = k - kh           (exact: k = kh + kl, |kl| <= 2048)
      3. r = a; then r = r - kh * Pj; r = r - kl * Pj for j = 1, 2, 3, 4    (16 fp32 ops)
      4. z = r * r
      5. s = ((S0 * z + S1) * z + S2);  s = ((s * z) * r) + r            (Horner, then in order)
      6. c = ((C0 * z + C1) * z + C2);  c = (((c * z) * z) - (0.5 * z)) + 1
      7. by quadrant q = 0, 1, 2, 3: sin = s, c, -s, -c;  cos = c, -s, -c, s
    For |k| < 2^24 every product kh * Pj, kl * Pj with j <= 3 is exact, so the reduction uses
    about 60 bits of pi/2. Step 1 picks the nearest quadrant while |a| < 2^21 (the rounding of
    a * TWO_OVER_PI stays far below 1/2); there the result is as accurate as the polynomials
    (docs/numerics.md). Larger angles give deterministic but less accurate results; their own
    binary32 spacing is then 1/4 rad or more. sin(-0) is +0 (step 3 turns -0 into +0).
    """
    a = f32(a)
    finite = np.isfinite(a)
    a0 = np.where(finite, a, _c(0.0))
    k = np.rint(a0 * _TWO_OVER_PI)
    kh = np.rint(k * _TWO_M12) * _TWO_P12
    kl = k - kh
    r = a0
    for part in _PIO2:
        r = r - kh * part
        r = r - kl * part
    z = r * r
    s = _SIN_P[0] * z
    s = s + _SIN_P[1]
    s = s * z
    s = s + _SIN_P[2]
    s = s * z
    s = s * r
    s = s + r
    c = _COS_P[0] * z
    c = c + _COS_P[1]
    c = c * z
    c = c + _COS_P[2]
    c = c * z
    c = c * z
    c = c - _HALF * z
    c = c + _ONE
    q = np.mod(k.astype(np.int64), 4)
    sin = np.choose(q, [s, c, -s, -c])
    cos = np.choose(q, [c, -s, -c, s])
    sin = np.where(finite, sin, _NAN).astype(np.float32)
    cos = np.where(finite, cos, _NAN).astype(np.float32)
    return sin, cos


@functools.lru_cache(maxsize=64)
def _inv_freq_cached(theta: float, dim: int) -> tuple[float, ...]:
    out = []
    with localcontext() as ctx:
        ctx.prec = 60
        ln_theta = Decimal(theta).ln()
        for i in range(dim // 2):
            out.append(nearest_f32(((Decimal(-2 * i) / Decimal(dim)) * ln_theta).exp()))
    return tuple(out)


def nearest_f32(v: Decimal, what: str = "rope frequency") -> float:
    """The binary32 value nearest to ``v`` (certified: ``v`` carries 60 significant digits, and
    ArithmeticError naming ``what`` if it lies within 1e-50 relative of a rounding midpoint)."""
    guess = np.float32(float(v))
    cands = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    exact = Fraction(v)
    dists = [abs(Fraction(float(c)) - exact) for c in cands]
    best = min(range(3), key=dists.__getitem__)
    others = sorted(dists)
    if others[1] - others[0] <= exact * Fraction(1, 10**50):
        raise ArithmeticError(f"{what} {v} is too close to a binary32 midpoint to certify")
    return float(cands[best])


def rope_inv_freq(theta: float, dim: int) -> np.ndarray:
    """The rotary frequencies theta^(-2i/dim), i = 0..dim/2-1, each correctly rounded to fp32.

    A per-(theta, dim) constant table, computed on the host with 60-digit decimal arithmetic and
    certified against the binary32 rounding midpoints; CUDA kernels and RTL receive this table
    (it is not recomputed in binary32). ``theta`` > 0, ``dim`` even and >= 2.
    """
    if not theta > 0 or dim < 2 or dim % 2:
        raise ValueError(f"rope needs theta > 0 and an even dimension >= 2, got {theta}, {dim}")
    return np.array(_inv_freq_cached(float(theta), int(dim)), dtype=np.float32)
