"""Error of the numerics definition (opbsim/isa/numerics.py) against float64, in float32 ulps.

    python benchmarks/numerics_error.py               # sampled: >= 1e6 inputs per function
    python benchmarks/numerics_error.py --exhaustive  # every binary32 input of exp, rsqrt, silu

The ulp is that of the exact (float64) result: 2^(e-23) with e = max(floor(log2|ref|), -126),
so subnormal results are measured in units of 2^-149 (opbsim.isa.floatbits.ulp_error).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from opbsim.isa import numerics
from opbsim.isa.elementary import rope_inv_freq, sincos
from opbsim.isa.floatbits import f32_from_bits, ulp_error

CHUNK = 1 << 24


def _exp64(x):
    with np.errstate(over="ignore"):
        return np.exp(x.astype(np.float64))


def _silu64(x):
    x = x.astype(np.float64)
    with np.errstate(over="ignore"):
        return x / (1.0 + np.exp(-x))


def _rsqrt64(x):
    return 1.0 / np.sqrt(x.astype(np.float64))


def _rope64(x, pos, theta, angles=None):
    """Rotary embedding in float64: exact angles pos * theta^(-2i/D), or (angles="fp32") the
    definition's binary32 angles fl(pos * rope_inv_freq), to isolate the sin/cos error."""
    d = x.shape[-1]
    if angles == "fp32":
        ang = (pos[:, None].astype(np.float32) * rope_inv_freq(theta, d)[None, :]).astype(np.float64)
    else:
        ang = pos[:, None].astype(np.float64) * theta ** (-np.arange(0, d, 2) / d)[None, :]
    c, s = np.cos(ang), np.sin(ang)
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return np.concatenate([x1 * c - x2 * s, x2 * c + x1 * s], axis=-1)


FUNCTIONS = {
    # name: (definition, float64 reference, the exhaustive input range as (first, last) bit patterns)
    "exp": (numerics.exp, _exp64, [(0x00000000, 0x42B20000), (0x80000000, 0xC2D00000)]),
    "rsqrt": (numerics.rsqrt, _rsqrt64, [(0x00000001, 0x7F7FFFFF)]),
    "silu": (numerics.silu, _silu64, [(0x00000000, 0x7F7FFFFF), (0x80000000, 0xFF7FFFFF)]),
}


def _stats(err: np.ndarray) -> tuple[float, float]:
    return float(err.max()), float(err.mean())


def exhaustive(name: str) -> tuple[float, float, int, float]:
    fn, ref, ranges = FUNCTIONS[name]
    worst, total, count, at = 0.0, 0.0, 0, 0.0
    for first, last in ranges:
        for lo in range(first, last + 1, CHUNK):
            bits = np.arange(lo, min(lo + CHUNK, last + 1), dtype=np.uint64).astype(np.uint32)
            x = f32_from_bits(bits)
            err = ulp_error(fn(x), ref(x))
            i = int(err.argmax())
            if err[i] > worst:
                worst, at = float(err[i]), float(x[i])
            total += float(err.sum())
            count += err.size
    return worst, total / count, count, at


def sampled(rng: np.random.Generator, n: int = 1 << 21) -> dict[str, tuple[float, float, int]]:
    out = {}
    everywhere = f32_from_bits(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32))
    everywhere = everywhere[np.isfinite(everywhere)]
    dense = rng.uniform(-104, 89, n).astype(np.float32)
    for name in ("exp", "silu"):
        fn, ref, _ = FUNCTIONS[name]
        x = np.concatenate([everywhere, dense])
        out[name] = (*_stats(ulp_error(fn(x), ref(x))), x.size)
    pos = np.abs(everywhere[everywhere != 0])
    out["rsqrt"] = (*_stats(ulp_error(numerics.rsqrt(pos), _rsqrt64(pos))), pos.size)
    for cols, sigma in ((64, 4.0), (1024, 4.0), (4096, 1.0)):
        x = (rng.standard_normal(((1 << 21) // cols, cols)) * sigma).astype(np.float32)
        s64 = x.astype(np.float64) * 0.125
        z = np.exp(s64 - s64.max(axis=-1, keepdims=True))
        out[f"softmax N={cols} sigma={sigma:g} scale=1/8"] = (
            *_stats(ulp_error(numerics.softmax(x, 0.125), z / z.sum(axis=-1, keepdims=True))), x.size)
    for h in (128, 4096):
        x = rng.standard_normal(((1 << 21) // h, h), dtype=np.float32)
        w = rng.standard_normal(h, dtype=np.float32)
        x64 = x.astype(np.float64)
        ref = x64 / np.sqrt(np.mean(x64 * x64, axis=-1, keepdims=True) + float(np.float32(1e-5))) * w
        out[f"rmsnorm H={h}"] = (*_stats(ulp_error(numerics.rmsnorm(x, w, 1e-5), ref)), x.size)
    for top in (4096, 131072):
        x = rng.standard_normal((2, 1024, 128), dtype=np.float32)
        pos = rng.integers(0, top, 1024).astype(np.int32)
        y = numerics.rope(x, pos, rope_inv_freq(500000.0, 128))
        for what, angles in (("exact angles", None), ("its fp32 angles", "fp32")):
            exact = _rope64(x.astype(np.float64), pos, 500000.0, angles)
            err = np.abs(y - exact) / 2.0**-24
            out[f"rope pos<{top} vs {what} (abs, 2^-24)"] = (*_stats(err), x.size)
    for lim in (np.pi / 4, 2.0**15, 2.0**21):
        a = rng.uniform(-lim, lim, n).astype(np.float32)
        s, c = sincos(a)
        a64 = a.astype(np.float64)
        err = np.maximum(np.abs(s - np.sin(a64)), np.abs(c - np.cos(a64))) / 2.0**-24
        out[f"sin/cos |a|<={lim:.4g} (abs, 2^-24)"] = (*_stats(err), a.size)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exhaustive", action="store_true", help="every binary32 input of exp, rsqrt, silu")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.exhaustive:
        for name in FUNCTIONS:
            t = time.perf_counter()
            worst, mean, count, at = exhaustive(name)
            print(f"{name:6s} max {worst:.4f} ulp at x = {at!r}, mean {mean:.4f} ulp, {count} inputs, "
                  f"{time.perf_counter() - t:.0f} s", flush=True)
        return
    for name, (worst, mean, count) in sampled(np.random.default_rng(args.seed)).items():
        print(f"{name:42s} max {worst:9.4f}  mean {mean:.4f}  ({count} inputs)")


if __name__ == "__main__":
    main()
