"""Seeded random bf16 bit patterns for a layer check, generated directly as bits at memory speed.

The source is SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
generators", OOPSLA 2014; the output function of Java's SplittableRandom): output q of the
stream with key ``key`` is ``mix(key + (q + 1) * GAMMA)``, with

    mix(z): z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
            return z ^ (z >> 31)                            (uint64 arithmetic, wrapping)

Being a function of its index, any range of a tensor can be generated on its own (straight into
the emulated memory, a block at a time) and gives the same bits as the whole. Element e of a
tensor takes the 16 bits ``(output(e // 4) >> (16 * (e % 4))) & 0xFFFF``. A tensor's key is
``mix(mix(seed) ^ crc32(name))``: its bits depend on the seed and its name, nothing else.

What the 16 bits become:
- a weight: sign and 7 mantissa bits as drawn, 3 bits pick the exponent: magnitudes 2^-10 .. 2^-2;
- a norm gain: positive, in [1, 2) (exponent 127, 7 mantissa bits as drawn);
- an fp8 weight (``fp8_weight_codes``): the weight's bf16 value times 2^9 rounded to e4m3 (magnitudes
  2^-1 .. 2^7, never NaN); its block scales (``block_scales``): 2^-9 (1 + m / 128), m the 7 mantissa
  bits drawn for the scale tensor's name, so code * scale spans about 2^-10 .. 1; an fp8 KV cache's
  scale (``block_scales(..., kv=True)``): 2^-1 (1 + m / 128), its codes roughly standard normal;
- ``normal_bits``: four 16-bit fields of one output summed, centred and scaled to unit variance
  (Irwin-Hall of 4, values within +-sqrt(12)), the float32 cut to bf16 (truncated).
"""

from __future__ import annotations

import math
import zlib

import numpy as np
from numba import njit, prange

from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.fp8 import fp8_bits

__all__ = ["key_of", "fill_weight", "weight_bits", "normal_bits", "fp8_weight_codes", "block_scales"]

_MASK = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_OPTS = dict(error_model="numpy", cache=True, nogil=True)
_BLOCK = 1 << 16  # outputs per parallel block


def _mix_int(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


def key_of(seed: int, name: str) -> int:
    """The stream key of tensor ``name`` under ``seed``."""
    return _mix_int(_mix_int(seed & _MASK) ^ zlib.crc32(name.encode()))


@njit(inline="always", **_OPTS)
def _output(key, q):
    z = key + (q + np.uint64(1)) * np.uint64(_GAMMA)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(inline="always", **_OPTS)
def _lanes(h, keep, exp_mask, exp_base):
    """The four 16-bit lanes of h mapped at once: (r & keep) | ((((r >> 7) & exp_mask) +
    exp_base) << 7) in each (exp_mask keeps bits 7..9 of a lane, so no lane spills into the next;
    exp_base + 7 < 512)."""
    return (h & keep) | ((((h >> np.uint64(7)) & exp_mask) + exp_base) << np.uint64(7))


@njit(parallel=True, **_OPTS)
def _fill4(key, q0, out, keep, exp_mask, exp_base):
    """out[i] = the four mapped lanes of output q0 + i (out: uint64, the bits of 4 elements each)."""
    n = out.shape[0]
    for blk in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(blk * _BLOCK, min(n, (blk + 1) * _BLOCK)):
            out[i] = _lanes(_output(key, np.uint64(q0 + i)), keep, exp_mask, exp_base)


def _spread(value: int) -> np.uint64:
    return np.uint64(value * 0x0001_0001_0001_0001)


_SUM_MEAN = 4 * 65535 / 2  # the mean of four 16-bit fields, and their standard deviation
_SUM_SD = math.sqrt(4 * (65536**2 - 1) / 12)


@njit(parallel=True, **_OPTS)
def _normal(key, out):
    n = out.shape[0]
    blocks = (n + _BLOCK - 1) // _BLOCK
    for blk in prange(blocks):
        q0 = blk * _BLOCK
        q1 = min(n, q0 + _BLOCK)
        z = np.empty(q1 - q0, np.float32)
        for q in range(q0, q1):
            h = _output(key, np.uint64(q))
            s = 0.0
            for lane in range(4):
                s += float((h >> np.uint64(16 * lane)) & np.uint64(0xFFFF))
            z[q - q0] = (s - _SUM_MEAN) / _SUM_SD
        bits = z.view(np.uint32)
        for q in range(q0, q1):
            out[q] = np.uint16(bits[q - q0] >> np.uint32(16))


def fill_weight(seed: int, name: str, start: int, out: np.ndarray) -> None:
    """Writes elements ``start .. start + len(out) - 1`` (row-major order) of weight ``name`` into
    ``out`` (uint16, 1-D, contiguous); a name ending in ``norm.weight`` is a norm gain."""
    gains = name.endswith("norm.weight")
    keep, exp_mask, exp_base = (0x007F, 0, 127) if gains else (0x807F, 7, 127 - 10)
    args = (_spread(keep), _spread(exp_mask), _spread(exp_base))
    key = np.uint64(key_of(seed, name))
    q0, q1 = start // 4, -(-(start + out.size) // 4)
    if out.size == 0:
        return
    if start % 4 == 0 and out.size % 4 == 0 and out.flags.c_contiguous and out.ctypes.data % 8 == 0:
        _fill4(key, q0, out.view(np.uint64), *args)
        return
    whole = np.empty(q1 - q0, np.uint64)
    _fill4(key, q0, whole, *args)
    out[:] = whole.view(np.uint16)[start - 4 * q0:start - 4 * q0 + out.size]


def weight_bits(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """The whole of weight ``name``, bf16 bits of ``shape``."""
    out = np.empty(math.prod(shape), np.uint16)
    fill_weight(seed, name, 0, out)
    return out.reshape(shape)


def normal_bits(seed: int, name: str, shape: tuple[int, ...], out: np.ndarray | None = None) -> np.ndarray:
    """bf16 bits of roughly standard normal values (see the module text), of ``shape``; written
    into ``out`` (uint16, C-contiguous, of that shape) where given."""
    if out is None:
        out = np.empty(shape, np.uint16)
    if out.shape != tuple(shape) or out.dtype != np.uint16 or not out.flags.c_contiguous:
        raise ValueError(f"normal_bits: out must be a C-contiguous uint16 array of shape {tuple(shape)}")
    if out.size:
        _normal(np.uint64(key_of(seed, name)), out.reshape(-1))
    return out


def fp8_weight_codes(seed: int, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """e4m3 codes (uint8) of fp8 weight ``name`` (see the module text)."""
    return fp8_bits(bf16_widen(weight_bits(seed, name, shape)) * np.float32(512.0))


def block_scales(seed: int, name: str, shape: tuple[int, ...], *, kv: bool = False) -> np.ndarray:
    """fp32 scales of ``shape`` for the scale tensor ``name``: an fp8 weight's blocks, or with ``kv``
    an fp8 KV cache's (see the module text)."""
    m = (weight_bits(seed, name, shape) & np.uint16(0x7F)).astype(np.float32)
    return ((np.float32(128.0) + m) * np.float32(2.0 ** (-8 if kv else -16))).astype(np.float32)
