"""The exact arithmetic of every ISA instruction: the definition the executor, CUDA and RTL match.

Conventions (docs/numerics.md gives the reasons and the measured errors):
- Storage: bf16 (uint16 bit patterns), fp32, i32, fp8 e4m3 (uint8 codes). An instruction widens its
  bf16 / fp32 / e4m3 inputs to fp32 (exact), computes with IEEE-754 binary32 operations rounded to
  nearest even, and rounds the fp32 result once to the destination dtype (``store``): bf16 by RNE,
  fp32 as is, e4m3 by RNE with saturation (isa/fp8.py). The fp8 instructions: numerics_fp8.py.
- No flush to zero: subnormal inputs and results are kept everywhere.
- Every NaN an instruction computes is stored as the canonical quiet NaN (fp32 0x7FC00000,
  bf16 0x7FC0). Data movement (copy, gather, alltoall) moves bits unchanged, payloads included.
- Sums start from +0.0 and add in index order, one rounded fp32 add per term (so a sum of only
  -0.0 terms is +0.0). Products are rounded before they are added: never fused.
- Every instruction reads all its inputs before it writes its outputs.

The functions here take and return numpy arrays: fp32 values (float32) for float operands,
int32 for i32 operands, raw bit patterns only where stated (``store``, ``cvt``, data movement).
``SEMANTICS`` maps each opcode of the ISA table to its function (None: no value effect).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from opbsim.isa.elementary import exp, exp_scaled, rsqrt, sincos
from opbsim.isa.floatbits import bf16_bits, bf16_widen, canonical_f32, f32
from opbsim.isa.fp8 import fp8_bits, fp8_widen
from opbsim.isa.numerics_fp8 import act_quant, gemm_fp8, quant
from opbsim.isa.spec import Opcode
from opbsim.isa.types import DType

__all__ = [
    "widen", "store", "cvt",
    "copy", "allreduce", "allgather", "alltoall",
    "gemm", "add", "sub", "mul", "div", "reduce_max", "reduce_sum",
    "exp", "rsqrt", "silu", "sigmoid", "relu", "gelu", "clamp", "rope", "scale", "layernorm",
    "softmax", "rmsnorm", "topk", "topk_grouped", "gather", "scatter", "scatter_last", "scatter_add",
    "seq_sum", "causal_mask", "gemm_fp8", "quant", "act_quant", "SEMANTICS", "STORAGE",
]

STORAGE: dict[DType, type] = {DType.BF16: np.uint16, DType.FP32: np.float32, DType.I32: np.int32,
                               DType.FP8_E4M3: np.uint8}
"""The numpy dtype holding each ISA dtype's raw storage (bf16 and e4m3 as their bit patterns)."""

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_NEG_INF = np.float32(-np.inf)
_TWO_M64 = np.float32(2.0**-64)
_I32_MAX = 2**31 - 1


def _quiet():
    return np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore")


def widen(raw, dtype: DType) -> np.ndarray:
    """Raw storage -> values: bf16 bits and e4m3 codes -> float32 (exact), fp32 -> float32, i32 -> int32."""
    if dtype is DType.BF16:
        return bf16_widen(raw)
    if dtype is DType.FP8_E4M3:
        return fp8_widen(raw)
    return np.asarray(raw, dtype=STORAGE[dtype])


def store(values, dtype: DType) -> np.ndarray:
    """fp32 values -> raw storage of ``dtype``, the one rounding at an instruction's output.

    bf16: RNE (NaN -> 0x7FC0); fp32: unchanged except NaN -> 0x7FC00000; e4m3: RNE saturating to
    +-448 (NaN -> 0x7F). An i32 destination takes int32 values unchanged (only topk indices, gather
    and cvt produce them).
    """
    if dtype is DType.BF16:
        return bf16_bits(values)
    if dtype is DType.FP8_E4M3:
        return fp8_bits(values)
    if dtype is DType.FP32:
        return canonical_f32(values)
    return np.asarray(values, dtype=np.int32)


def cvt(raw, src: DType, dst: DType) -> np.ndarray:
    """Raw ``src`` storage converted to raw ``dst`` storage.

    Float to float: widen, then ``store`` (bf16, e4m3 -> fp32 exact; e4m3 -> bf16 exact; fp32 -> bf16
    RNE; bf16, fp32 -> e4m3 RNE saturating to +-448; NaN canonical).
    i32 -> fp32: RNE. i32 -> bf16 / e4m3: i32 -> fp32 (RNE), then ``store``: two roundings.
    float -> i32: round to nearest integer, ties to even; saturates to [-2^31, 2^31 - 1];
    NaN -> 0 (as PTX ``cvt.rni.s32.f32``). i32 -> i32: unchanged.
    """
    if src is DType.I32 and dst is DType.I32:
        return np.asarray(raw, dtype=np.int32).copy()
    if src is DType.I32:
        return store(np.asarray(raw, dtype=np.int32).astype(np.float32), dst)
    x = widen(raw, src)
    if dst is not DType.I32:
        return store(x, dst)
    r = np.rint(x.astype(np.float64))
    r = np.where(np.isnan(r), 0.0, np.clip(r, -(2.0**31), float(_I32_MAX)))
    return r.astype(np.int32)


def copy(raw) -> np.ndarray:
    """dst = src: bits moved unchanged (shapes and dtypes equal)."""
    return np.array(raw, copy=True)


def allreduce(contributions: Sequence[np.ndarray]) -> np.ndarray:
    """acc = +0; acc = acc + src_d for d = 0..n-1 (fp32, device order); every device gets acc."""
    acc = np.zeros(np.shape(contributions[0]), dtype=np.float32)
    with _quiet():
        for c in contributions:
            acc = acc + f32(c)
    return acc


def allgather(sources: Sequence[np.ndarray]) -> np.ndarray:
    """dst[i] = src of device i, on every device (leading axis: the n devices); bits unchanged."""
    return np.stack([np.asarray(s) for s in sources])


def alltoall(sources: Sequence[np.ndarray]) -> list[np.ndarray]:
    """dst on device i, slice j = src of device j, slice i (leading axis: the n devices); bits."""
    n = len(sources)
    return [np.stack([np.asarray(sources[j])[i] for j in range(n)]) for i in range(n)]


def gemm(a, b, acc=None) -> np.ndarray:
    """[..., M, K] x [..., K, N] -> [..., M, N] fp32 (leading axes: batch, equal in all three).

    acc = +0 (or the given fp32 partial sums, for gemm_acc); then for k = 0..K-1 in order:
    acc = acc + (a[..., :, k] * b[..., k, :]), the product rounded to fp32, then added.
    """
    a, b = f32(a), f32(b)
    k_dim = a.shape[-1]
    shape = a.shape[:-1] + b.shape[-1:]
    out = np.zeros(shape, dtype=np.float32) if acc is None else np.array(acc, dtype=np.float32)
    with _quiet():
        for k in range(k_dim):
            out += a[..., :, k, None] * b[..., None, k, :]
    return out


def add(a, b) -> np.ndarray:
    with _quiet():
        return f32(a) + f32(b)


def sub(a, b) -> np.ndarray:
    with _quiet():
        return f32(a) - f32(b)


def mul(a, b) -> np.ndarray:
    with _quiet():
        return f32(a) * f32(b)


def div(a, b) -> np.ndarray:
    """a / b, correctly rounded: x/0 = +-inf, 0/0 = NaN, inf/inf = NaN."""
    with _quiet():
        return f32(a) / f32(b)


def scale(x, factor: float) -> np.ndarray:
    with _quiet():
        return f32(x) * np.float32(factor)


def clamp(x, lo: float, hi: float, lower: bool = True) -> np.ndarray:
    """lo where x < lo (only with ``lower``), hi where that is > hi, else x itself (so a bound equal
    to x, e.g. +0 against -0, leaves x), fp32; NaN stays NaN (torch.clamp's rule)."""
    x = f32(x)
    with _quiet():
        m = np.where(x < np.float32(lo), np.float32(lo), x) if lower else x
        return np.where(m > np.float32(hi), np.float32(hi), m).astype(np.float32)


def seq_sum(x) -> np.ndarray:
    """Sum over the last axis: acc = +0; acc = acc + x[..., j] for j = 0..N-1. Shape [..., 1]."""
    x = f32(x)
    acc = np.zeros(x.shape[:-1], dtype=np.float32)
    with _quiet():
        for j in range(x.shape[-1]):
            acc = acc + x[..., j]
    return acc[..., None]


def reduce_sum(x) -> np.ndarray:
    """The ``sum`` instruction: ``seq_sum``."""
    return seq_sum(x)


def reduce_max(x) -> np.ndarray:
    """Max over the last axis, shape [..., 1]: m = x[..., 0]; then for j = 1..N-1,
    m = x[..., j] if (x[..., j] > m or x[..., j] is NaN) else m. So a NaN anywhere gives NaN,
    and between equal values (+0 and -0) the first in index order wins. An empty axis gives -inf.
    """
    x = f32(x)
    if x.shape[-1] == 0:
        return np.full(x.shape[:-1] + (1,), _NEG_INF, dtype=np.float32)  # the identity of max
    m = x[..., 0].copy()
    for j in range(1, x.shape[-1]):
        v = x[..., j]
        m = np.where((v > m) | np.isnan(v), v, m)
    return m[..., None]


def _times_sigmoid(x: np.ndarray, z: np.ndarray) -> np.ndarray:
    """x / (1 + exp(-z)) in fp32 steps, with no intermediate overflowing or losing bits:

      z >= 0:  e = exp(-z);  y = x / (1 + e)
      z <  0:  es = exp_scaled(z, 64)  (= e^z * 2^64, exact scaling);  e = es * 2^-64
               y = ((x * es) / (1 + e)) * 2^-64
    The second branch keeps the tiny results of very negative z, down to the subnormals, which
    exp(-z) = inf (or a subnormal e^z) would flush or blur. x = -inf gives -0.0 (the limit).
    """
    neg = z < 0
    es = exp_scaled(np.where(neg, z, -z), 64)
    with _quiet():
        e = es * _TWO_M64
        d = _ONE + np.where(neg, e, exp(-z))
        y_pos = x / d
        y_neg = ((x * es) / d) * _TWO_M64
    y = np.where(neg, y_neg, y_pos)
    return np.where(x == -np.inf, np.float32(-0.0), y).astype(np.float32)


def silu(x) -> np.ndarray:
    """x * sigmoid(x) = ``_times_sigmoid(x, x)``: silu(-inf) = -0.0 (the limit), silu(+inf) = +inf,
    NaN -> NaN."""
    x = f32(x)
    return _times_sigmoid(x, x)


def sigmoid(x) -> np.ndarray:
    """1 / (1 + exp(-x)) = ``_times_sigmoid(1, x)``: sigmoid(-inf) = +0.0, sigmoid(+inf) = 1.0,
    NaN -> NaN; tiny results of very negative x are kept (down to the subnormals)."""
    x = f32(x)
    return _times_sigmoid(np.ones_like(x), x)


_GELU_C1 = np.float32(2.0 * np.sqrt(2.0 / np.pi))  # 2 sqrt(2/pi), rounded to fp32
_GELU_C2 = np.float32(2.0 * np.sqrt(2.0 / np.pi) * 0.044715)  # 2 sqrt(2/pi) 0.044715, rounded to fp32


def relu(x) -> np.ndarray:
    """x where x > 0, else +0.0 (so -0.0 -> +0.0); NaN -> NaN."""
    x = f32(x)
    with _quiet():
        return np.where(np.isnan(x) | (x > 0), x, _ZERO).astype(np.float32)


def gelu(x) -> np.ndarray:
    """GELU in its tanh form, 0.5 x (1 + tanh(u)) with u = sqrt(2/pi) (x + 0.044715 x^3), computed as
    the equal x * sigmoid(2u), which keeps its relative accuracy for negative x (fp32 steps):

      z = x * ((C2 * (x * x)) + C1)     (C1 = fp32(2 sqrt(2/pi)), C2 = fp32(2 sqrt(2/pi) 0.044715))
      y = _times_sigmoid(x, z)
    gelu(+inf) = +inf, gelu(-inf) = -0.0 (the limit), NaN -> NaN.
    """
    x = f32(x)
    with _quiet():
        z = x * ((_GELU_C2 * (x * x)) + _GELU_C1)
    return _times_sigmoid(x, z)


def rope(x, pos, freq, mscale: float = 1.0) -> np.ndarray:
    """Rotary embedding of x [..., T, D] at integer positions pos [T], halves rotated.

    With h = D/2, f = freq [h] (fp32; the host's table, correctly rounded: elementary.rope_inv_freq
    theta^(-2i/D), or a long-context scaling of it, isa/rope_freq.py) and m = fp32(mscale):
      a[t, i] = fp32(pos[t]) * f[i]            (pos converted RNE, exact for |pos| < 2^24)
      s, c = sincos(a)
      s' = s * m, c' = c * m                   (fp32 multiplies; exact for m = 1: the unscaled rotation)
      y[..., i]     = (x[..., i] * c') - (x[..., i + h] * s')
      y[..., i + h] = (x[..., i + h] * c') + (x[..., i] * s')      (each product rounded first)
    """
    x = f32(x)
    d = x.shape[-1]
    h = d // 2
    freq = np.asarray(freq, dtype=np.float32).reshape(-1)
    if freq.shape != (h,):
        raise ValueError(f"rope needs {h} frequencies for a last axis of {d}, got {freq.size}")
    ang = np.asarray(pos, dtype=np.int32).astype(np.float32)[:, None] * freq[None, :]
    s, c = sincos(ang)
    m = np.float32(mscale)
    x1, x2 = x[..., :h], x[..., h:]
    with _quiet():
        s, c = s * m, c * m
        y1 = (x1 * c) - (x2 * s)
        y2 = (x2 * c) + (x1 * s)
    return np.concatenate([y1, y2], axis=-1)


def causal_mask(rows: int, cols: int, qpos: int, span: int = 0, chunked: bool = False) -> np.ndarray:
    """[rows, cols] bool, True where masked. Row r is the query at key column q = qpos + r; column c
    is masked when c > q (causal), and with ``span`` W > 0 also when c <= q - W (a sliding window of
    the W most recent keys) or, ``chunked``, when c // W != q // W (the keys of the query's own
    W-aligned chunk). Column q itself is never masked."""
    c = np.arange(cols)[None, :]
    q = (qpos + np.arange(rows))[:, None]
    masked = c > q
    if span and chunked:
        masked |= (c // span) != (q // span)
    elif span:
        masked |= c <= q - span
    return masked


def softmax(x, scale: float = 1.0, causal: bool = False, qpos: int = 0, span: int = 0, chunked: bool = False,
            sink: bool = False) -> np.ndarray:
    """Softmax over the last axis of x [..., R, C] (rank 1: one row, r = 0).

      s = x * scale                                    (fp32 mul; with sink, the last column is taken as is)
      masked (causal): ``causal_mask(R, C', qpos, span, chunked)`` over the C' score columns (C' = C - 1
        with a sink, else C); a sink column is never masked
      m = reduce_max of the unmasked s                 (NaN anywhere unmasked -> NaN)
      e = exp(s - m) for unmasked entries, +0 for masked ones
      z = seq_sum(e)                                   (index order, from +0: the sink is added last)
      y = e / z for unmasked entries, +0 for masked ones
    With ``sink`` the last column is a learned logit (gpt-oss's attention sink): it joins the max
    and the denominator; its entry of y is its own probability, which attention does not use.
    A row with an unmasked NaN, +inf or only -inf values gives NaN in every unmasked entry.
    """
    x = f32(x)
    with _quiet():
        s = x * np.float32(scale)
        if sink:
            s[..., -1] = x[..., -1]
        mask = None
        if causal:
            rows = s.shape[-2] if s.ndim >= 2 else 1
            mask = causal_mask(rows, s.shape[-1] - sink, int(qpos), int(span), bool(chunked))
            if sink:
                mask = np.concatenate([mask, np.zeros((rows, 1), bool)], axis=1)
            if s.ndim == 1:
                mask = mask[0]
            s = np.where(mask, _NEG_INF, s)
        m = reduce_max(s)
        e = exp(s - m)
        if mask is not None:
            e = np.where(mask, _ZERO, e)
        y = e / seq_sum(e)
        if mask is not None:
            y = np.where(mask, _ZERO, y)
    return y.astype(np.float32)


def rmsnorm(x, weight, eps: float) -> np.ndarray:
    """x [..., H] normalised by its root mean square, times weight [H]:

      ss = seq_sum(x * x)          (each square rounded, then added in order)
      v = (ss / fp32(H)) + eps     (fp32 div, fp32 add)
      r = rsqrt(v)                 (sqrt, then 1 / sqrt)
      y = (x * r) * weight         (two fp32 muls, in this order)
    """
    x, w = f32(x), f32(weight)
    with _quiet():
        ss = seq_sum(x * x)
        v = (ss / np.float32(x.shape[-1])) + np.float32(eps)
        return (x * rsqrt(v)) * w


def layernorm(x, weight, bias, eps: float) -> np.ndarray:
    """x [..., H] centred and scaled over its last axis, times weight [H], plus bias [H]:

      mean = seq_sum(x) / fp32(H)          c = x - mean
      v = (seq_sum(c * c) / fp32(H)) + eps  r = rsqrt(v)
      y = ((c * r) * weight) + bias         (each product rounded, then added)
    """
    x, w, b = f32(x), f32(weight), f32(bias)
    n = np.float32(x.shape[-1])
    with _quiet():
        c = x - (seq_sum(x) / n)
        v = (seq_sum(c * c) / n) + np.float32(eps)
        return ((c * rsqrt(v)) * w) + b


def topk(x, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k largest entries of the last axis in descending order, and their indices (int32).

    Order: NaN above +inf, then the usual order; +0 and -0 are equal; equal values go to the
    lower index first. The values are the entries themselves (fp32).
    """
    x = f32(x)
    bits = x.view(np.int32).astype(np.int64)
    key = np.where(bits >= 0, bits, -(bits & 0x7FFFFFFF))
    key = np.where(np.isnan(x), np.int64(2**31), key)
    order = np.argsort(-key, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(x, order, axis=-1), order.astype(np.int32)


def topk_grouped(x, bias, k: int, groups: int, keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Group-limited top-k over the last axis of x [..., E] (DeepSeek-V3's ``noaux_tc`` routing,
    transformers models/deepseek_v3 ``get_topk_indices``), every step fp32:

      c = x + bias                               (the choice scores; bias [E])
      g[j] = top1 + top2 of c within group j     (E / groups experts per group, topk order; a
                                                  one-expert group scores its one choice)
      the ``keep`` best groups by g (topk order: ties to the lower group) stay; elsewhere c = +0.0
      idx = the k largest of c (topk order);  vals = x[idx]  (the scores without the bias)
    """
    x, c = f32(x), add(x, bias)
    e = x.shape[-1]
    if e % groups:
        raise ValueError(f"{groups} groups do not divide {e} experts")
    per = c.reshape(*c.shape[:-1], groups, e // groups)
    best, _ = topk(per, min(2, e // groups))
    g = best[..., 0] if best.shape[-1] == 1 else add(best[..., 0], best[..., 1])
    _, kept = topk(g, keep)
    mask = np.zeros(g.shape, dtype=bool)
    np.put_along_axis(mask, kept.astype(np.int64), True, axis=-1)
    choice = np.where(np.repeat(mask, e // groups, axis=-1), c, _ZERO).astype(np.float32)
    _, idx = topk(choice, k)
    return np.take_along_axis(x, idx.astype(np.int64), axis=-1), idx


def gather(raw, idx) -> np.ndarray:
    """dst[i, :] = src[idx[i], :]: bits moved unchanged. Every index must be in 0..S-1."""
    return np.asarray(raw)[np.asarray(idx, dtype=np.int64)]


def scatter_last(idx) -> tuple[np.ndarray, np.ndarray]:
    """(rows, i): each distinct row of ``idx`` once, with the last i that names it."""
    idx = np.asarray(idx, dtype=np.int64)
    rev_rows, rev_pos = np.unique(idx[::-1], return_index=True)
    return rev_rows, idx.size - 1 - rev_pos


def scatter(raw_dst, raw_src, idx) -> np.ndarray:
    """dst[idx[i], :] = src[i, :] for i in order: bits moved unchanged, and when a row is named
    twice the later i wins. Rows not named keep their contents (they are not read)."""
    out = np.array(raw_dst, copy=True)
    rows, last = scatter_last(idx)
    out[rows] = np.asarray(raw_src)[last]
    return out


def scatter_add(acc, src, idx, w) -> np.ndarray:
    """acc [S, H] fp32; for i = 0..T-1 in order: acc[idx[i], :] = acc[idx[i], :] + (w[i] * src[i, :]).

    The product is rounded to fp32, then added; a row named twice accumulates in index order.
    Rows idx does not name are neither read nor written: their bits stay as they were.
    """
    out = np.array(acc, dtype=np.float32)
    src, w = f32(src), f32(w)
    idx = np.asarray(idx, dtype=np.int64)
    with _quiet():
        for i in range(src.shape[0]):
            out[idx[i]] = out[idx[i]] + (w[i] * src[i])
    return out


_O = Opcode
SEMANTICS: dict[Opcode, Callable | None] = {
    _O.COPY: copy, _O.ALLREDUCE: allreduce, _O.ALLGATHER: allgather, _O.ALLTOALL: alltoall,
    _O.GEMM: gemm, _O.GEMM_ACC: gemm, _O.GEMM_FP8: gemm_fp8, _O.QUANT: quant, _O.ACT_QUANT: act_quant,
    _O.ADD: add, _O.SUB: sub, _O.MUL: mul, _O.DIV: div, _O.MAX: reduce_max, _O.SUM: reduce_sum,
    _O.EXP: exp, _O.RSQRT: rsqrt, _O.SILU: silu, _O.SIGMOID: sigmoid, _O.RELU: relu, _O.GELU: gelu,
    _O.ROPE: rope, _O.SCALE: scale, _O.CLAMP: clamp,
    _O.CVT: cvt, _O.LAYERNORM: layernorm,
    _O.SOFTMAX: softmax, _O.SOFTMAX_MASKED: softmax,
    _O.RMSNORM: rmsnorm, _O.TOPK: topk, _O.TOPK_GROUPED: topk_grouped, _O.GATHER: gather,
    _O.SCATTER: scatter, _O.SCATTER_ADD: scatter_add,
    _O.LAUNCH: None, _O.SIGNAL: None, _O.WAIT: None, _O.HALT: None,
}
"""Each opcode's definition. launch runs its body; signal, wait and halt move no values."""
