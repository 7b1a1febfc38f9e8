"""Per-kernel checks: seeded inputs with the corners of binary32 / bf16, run through ``Ops``,
compared bit for bit with numerics.py applied to the same raw inputs.

``CHECKS`` maps a check name to ``fn(ops, rng) -> list[Comparison]``; ``run_checks`` runs them
all (or a subset). Inputs reach subnormals, signed zeros, infinities, NaN, bf16 rounding ties,
overflowing and underflowing products (where a fused multiply-add would differ), repeated
indices, ties in top-k, causal masks, transposed and stride-0 operands.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from opbsim.isa import numerics as N
from opbsim.isa import rope_freq as R
from opbsim.isa.elementary import exp_scaled, rope_inv_freq
from opbsim.isa.floatbits import bf16_bits, f32_from_bits
from opbsim.isa.types import DType
from opbsim.reference.compare import Comparison, compare
from opbsim.reference.interface import BF16, BINARY_OPS, FP8, FP32, I32, UNARY_OPS, Ops
from opbsim.reference.numpy_ops import definition, store, values

__all__ = ["CHECKS", "run_checks", "corner_f32", "corner_bf16"]

_FIXED = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0**-149, -(2.0**-149), 2.0**-126,
                   2.0**-133, 3.4028235e38, -3.4028235e38, 88.7, -88.7, 89.0, -104.0, -168.0, 0.5],
                  dtype=np.float32)


def corner_f32(rng: np.random.Generator, n: int) -> np.ndarray:
    """n float32 values: ordinary magnitudes 1e-3..1e3, subnormals, bf16 rounding ties, random
    bit patterns (NaN payloads included) and the fixed corners, in equal parts."""
    kinds = rng.integers(0, 5, n)
    out = (rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)).astype(np.float32)
    sign = rng.integers(0, 2, n, dtype=np.uint32) << np.uint32(31)
    sub = f32_from_bits(rng.integers(1, 1 << 23, n, dtype=np.uint32) | sign)
    ties = f32_from_bits(((rng.integers(0, 1 << 16, n, dtype=np.uint32) << np.uint32(16)) | np.uint32(0x8000))
                         & np.uint32(0xBFFFFFFF))
    raw = f32_from_bits(rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32))
    out = np.where(kinds == 1, sub, out)
    out = np.where(kinds == 2, ties, out)
    out = np.where(kinds == 3, raw, out)
    return np.where(kinds == 4, _FIXED[rng.integers(0, _FIXED.size, n)], out).astype(np.float32)


def corner_bf16(rng: np.random.Generator, n: int) -> np.ndarray:
    """n bf16 bit patterns: ordinary values, random patterns (NaN, inf, subnormal) and corners."""
    ordinary = bf16_bits((rng.standard_normal(n) * 10.0 ** rng.uniform(-2, 2, n)).astype(np.float32))
    raw = rng.integers(0, 1 << 16, n, dtype=np.uint32).astype(np.uint16)
    fixed = bf16_bits(_FIXED)[rng.integers(0, _FIXED.size, n)]
    kinds = rng.integers(0, 4, n)
    return np.where(kinds == 1, raw, np.where(kinds == 2, fixed, ordinary)).astype(np.uint16)


def _bf16_normal(rng: np.random.Generator, shape, scale: float = 1.0) -> np.ndarray:
    return bf16_bits((rng.standard_normal(shape) * scale).astype(np.float32))


def _dt(kind: str) -> DType:
    return {BF16: DType.BF16, FP32: DType.FP32, I32: DType.I32, FP8: DType.FP8_E4M3}[kind]


def _fp8_ties(rng, n: int) -> np.ndarray:
    """n float32 values on e4m3 rounding boundaries (midpoints of neighbouring codes) and one ulp beside them."""
    codes = rng.integers(0, 0x7E, n)
    lo = N.widen(codes.astype(np.uint8), DType.FP8_E4M3).astype(np.float64)
    hi = N.widen((codes + 1).astype(np.uint8), DType.FP8_E4M3).astype(np.float64)
    mid = ((lo + hi) / 2).astype(np.float32)
    step = rng.integers(-1, 2, n).astype(np.float32)
    return np.nextafter(mid, mid + step * np.float32(np.inf)) * np.where(rng.random(n) < 0.5, -1, 1).astype(np.float32)


def _check_cvt(ops: Ops, rng) -> list[Comparison]:
    srcs = {FP32: np.concatenate([corner_f32(rng, 50_000), _fp8_ties(rng, 20_000)]), BF16: corner_bf16(rng, 50_000),
            I32: rng.integers(-(2**31), 2**31, 50_000, dtype=np.int64).astype(np.int32),
            FP8: np.arange(256, dtype=np.uint8)}
    out = []
    for sk, src in srcs.items():
        for dk in (BF16, FP32, I32, FP8):
            want = N.cvt(src, _dt(sk), _dt(dk))
            out.append(compare(f"cvt {sk}->{dk}", ops.download(ops.cvt(ops.upload(src), dk)), want))
    return out


def _check_unary(ops: Ops, rng) -> list[Comparison]:
    x = np.concatenate([corner_f32(rng, 100_000), rng.uniform(-110, 95, 100_000).astype(np.float32)])
    xb = corner_bf16(rng, 50_000)
    fns = {op: definition(op) if op != "exp_scaled" else lambda v: exp_scaled(v, 64) for op in UNARY_OPS}
    out = []
    for op, fn in fns.items():
        param = 64 if op == "exp_scaled" else 0
        for src, dk in ((x, FP32), (x, BF16), (xb, FP32)):
            want = store(fn(values(src)), dk)
            got = ops.download(ops.unary(op, ops.upload(src), dk, param))
            out.append(compare(f"{op} {'bf16' if src is xb else 'fp32'}->{dk}", got, want))
    return out


def _check_binary(ops: Ops, rng) -> list[Comparison]:
    a, b = corner_f32(rng, 100_000), corner_f32(rng, 100_000)
    fns = {op: definition(op) for op in BINARY_OPS}
    out = [compare(f"{op} fp32->{dk}", ops.download(ops.binary(op, ops.upload(a), ops.upload(b), dk)),
                   store(fn(a, b), dk)) for op, fn in fns.items() for dk in (FP32, BF16)]
    factor = float(np.float32(0.125))
    out.append(compare("scale", ops.download(ops.scale(ops.upload(a), factor, FP32)), store(N.scale(a, factor), FP32)))
    return out


def _gemm_case(ops: Ops, name: str, a: np.ndarray, b: np.ndarray, kind: str, acc=None) -> Comparison:
    want = store(N.gemm(values(a), values(b), None if acc is None else acc), kind)
    dev_acc = None if acc is None else ops.upload(acc)
    return compare(name, ops.download(ops.gemm(ops.upload(a), ops.upload(b), kind, dev_acc)), want)


def _check_gemm(ops: Ops, rng) -> list[Comparison]:
    out = []
    for m, k, n in ((1, 1, 1), (3, 5, 7), (8, 300, 129), (9, 70, 65), (64, 64, 64), (130, 257, 66), (1, 1000, 33)):
        a, w = _bf16_normal(rng, (m, k)), _bf16_normal(rng, (n, k), k ** -0.5)
        out.append(_gemm_case(ops, f"gemm {m}x{k}x{n} b transposed", a, w.T, FP32))
        out.append(_gemm_case(ops, f"gemm {m}x{k}x{n} bf16 out", a, np.ascontiguousarray(w.T), BF16))
        at = _bf16_normal(rng, (k, m))
        out.append(_gemm_case(ops, f"gemm {m}x{k}x{n} a transposed", at.T, np.ascontiguousarray(w.T), FP32))
    a, b = corner_bf16(rng, (37, 45)), corner_bf16(rng, (45, 29))
    out.append(_gemm_case(ops, "gemm corner values", a, b, FP32))
    # products that overflow or fall below the normal range: where a fused multiply-add differs
    big = bf16_bits(np.float32(2.0**64) * rng.choice(np.float32([1, -1, 1.5, 1.75]), (5, 12)))
    tiny = bf16_bits(np.float32(2.0**-70) * rng.choice(np.float32([1, -1, 1.25, 1.5]), (12, 6)))
    out.append(_gemm_case(ops, "gemm underflowing products", big, tiny, FP32))
    huge = bf16_bits(np.full((12, 6), 2.0**70, np.float32))
    out.append(_gemm_case(ops, "gemm overflowing products", big, huge, FP32))
    acc = corner_f32(rng, 20 * 11).reshape(20, 11)
    acc[0, :3] = -0.0
    out.append(_gemm_case(ops, "gemm_acc", _bf16_normal(rng, (20, 9)), _bf16_normal(rng, (9, 11)), FP32, acc))
    q = _bf16_normal(rng, (2, 3, 4, 16))
    keys = _bf16_normal(rng, (2, 50, 16))
    kt = np.broadcast_to(keys.transpose(0, 2, 1)[:, None], (2, 3, 16, 50))  # stride 0 over the group
    out.append(_gemm_case(ops, "gemm batched, stride-0 group axis", q, kt, FP32))
    a3, b3 = _bf16_normal(rng, (5, 17, 9)), _bf16_normal(rng, (5, 9, 70))
    out.append(_gemm_case(ops, "gemm batched rank 3", a3, b3, BF16))
    return out


def _check_rows(ops: Ops, rng) -> list[Comparison]:
    out = []
    x = (rng.standard_normal((6, 3, 37)) * 4).astype(np.float32)
    x[0, 0, 5] = np.nan
    x[0, 1, :] = -np.inf
    x[0, 2, 7] = np.inf
    x[1, 0, :4] = [0.0, -0.0, -0.0, 0.0]
    for causal, qpos, scale in ((False, 0, 1.0), (True, 0, 0.125), (True, 30, 0.125)):
        for dk in (FP32, BF16):
            want = store(N.softmax(x, scale, causal, qpos), dk)
            got = ops.download(ops.softmax(ops.upload(x), dk, scale, causal, qpos))
            out.append(compare(f"softmax causal={int(causal)} qpos={qpos} ->{dk}", got, want))
    for span, chunked, sink, qpos in ((5, False, False, 30), (8, True, False, 28), (6, False, True, 31),
                                      (16, True, True, 20), (0, False, True, 33)):
        for dk in (FP32, BF16):
            tag = f"softmax span={span} chunked={int(chunked)} sink={int(sink)} qpos={qpos} ->{dk}"
            want = store(N.softmax(x, 0.125, True, qpos, span, chunked, sink), dk)
            got = ops.download(ops.softmax(ops.upload(x), dk, 0.125, True, qpos, span, chunked, sink))
            out.append(compare(tag, got, want))
    row = (rng.standard_normal(1000) * 3).astype(np.float32)
    out.append(compare("softmax rank 1", ops.download(ops.softmax(ops.upload(row), FP32)), store(N.softmax(row), FP32)))
    for src in (corner_bf16(rng, (7, 129)), (rng.standard_normal((5, 4096)) * 2).astype(np.float32)):
        h = src.shape[-1]
        w, b = _bf16_normal(rng, (h,), 0.1), _bf16_normal(rng, (h,), 0.1)
        tag = f"{'bf16' if src.dtype == np.uint16 else 'fp32'} H={h}"
        for dk in (FP32, BF16):
            got = ops.download(ops.rmsnorm(ops.upload(src), ops.upload(w), 1e-5, dk))
            out.append(compare(f"rmsnorm {tag} ->{dk}", got, store(N.rmsnorm(values(src), values(w), 1e-5), dk)))
            got = ops.download(ops.layernorm(ops.upload(src), ops.upload(w), ops.upload(b), 1e-5, dk))
            want = store(N.layernorm(values(src), values(w), values(b), 1e-5), dk)
            out.append(compare(f"layernorm {tag} ->{dk}", got, want))
    z = corner_f32(rng, 64 * 33).reshape(64, 33)
    z[:8] = rng.choice(np.float32([0.0, -0.0, 1.0, -1.0]), (8, 33))
    for op, fn in (("max", N.reduce_max), ("sum", N.seq_sum)):
        out.append(compare(f"{op}", ops.download(ops.reduce(op, ops.upload(z), FP32)), store(fn(z), FP32)))
    return out


def _check_topk_rope(ops: Ops, rng) -> list[Comparison]:
    out = []
    for e, k in ((8, 2), (6, 1), (64, 8), (8, 8)):
        x = rng.choice(np.float32([0.5, 0.25, -0.0, 0.0, 1.0, np.nan, np.inf, -np.inf, -3.0]), (50, e))
        x[::2] = corner_f32(rng, 25 * e).reshape(25, e)
        vals, idx = ops.topk(ops.upload(x), k, FP32)
        wv, wi = N.topk(x, k)
        out.append(compare(f"topk E={e} k={k} values", ops.download(vals), store(wv, FP32)))
        out.append(compare(f"topk E={e} k={k} indices", ops.download(idx), wi))
    for e, k, groups, keep in ((16, 4, 4, 2), (64, 8, 8, 4), (12, 3, 12, 3), (8, 2, 1, 1)):
        x = rng.choice(np.float32([0.5, 0.25, -0.0, 0.0, 1.0, np.nan, np.inf, -np.inf, -3.0]), (40, e))
        x[::2] = corner_f32(rng, 20 * e).reshape(20, e)
        bias = rng.choice(np.float32([0.0, -0.0, 0.125, -1.0, 3.0]), e)
        vals, idx = ops.topk_grouped(ops.upload(x), ops.upload(bias), k, groups, keep, FP32)
        wv, wi = N.topk_grouped(x, bias, k, groups, keep)
        name = f"topk_grouped E={e} k={k} groups={groups} keep={keep}"
        out.append(compare(f"{name} values", ops.download(vals), store(wv, FP32)))
        out.append(compare(f"{name} indices", ops.download(idx), wi))
    z = corner_f32(rng, 4096)
    for lo, hi, lower in ((-7.0, 7.0, True), (0.0, 7.0, False), (0.0, 0.0, True)):
        for dk in (BF16, FP32):
            got = ops.download(ops.clamp(ops.upload(z), lo, hi, lower, dk))
            out.append(compare(f"clamp [{lo}, {hi}] lower={lower} ->{dk}", got, store(N.clamp(z, lo, hi, lower), dk)))
    for shape, table, top in (((3, 11, 64), "theta=1e4", 100), ((2, 4, 9, 128), "theta=5e5", 131072),
                              ((5, 16), "theta=1e6", 2**21), ((3, 7, 64), "yarn x32", 131072),
                              ((2, 5, 128), "llama3 x8", 2**20), ((4, 6, 32), "linear x4 mscale 0.7", 4096)):
        x = _bf16_normal(rng, shape)
        pos = rng.integers(0, top, shape[-2]).astype(np.int32)
        freq, mscale = _ROPE_TABLES[table](shape[-1])
        for dk in (BF16, FP32):
            want = store(N.rope(values(x), pos, freq, mscale), dk)
            got = ops.download(ops.rope(ops.upload(x), ops.upload(pos), ops.upload(freq), mscale, dk))
            out.append(compare(f"rope {list(shape)} {table} ->{dk}", got, want))
    return out


_ROPE_TABLES = {  # name -> (fp32 frequency table of a width, fp32 cos/sin factor)
    "theta=1e4": lambda d: (rope_inv_freq(1e4, d), 1.0),
    "theta=5e5": lambda d: (rope_inv_freq(5e5, d), 1.0),
    "theta=1e6": lambda d: (rope_inv_freq(1e6, d), 1.0),
    "yarn x32": lambda d: (R.yarn_inv_freq(150000.0, d, 32.0, 32.0, 1.0, 4096, False), R.yarn_attention_factor(32.0)),
    "llama3 x8": lambda d: (R.llama3_inv_freq(500000.0, d, 8.0, 1.0, 4.0, 8192), 1.0),
    "linear x4 mscale 0.7": lambda d: (R.linear_inv_freq(1e4, d, 4.0), float(np.float32(0.7))),
}


def _check_dispatch(ops: Ops, rng) -> list[Comparison]:
    out = []
    src = corner_bf16(rng, (40, 33))
    src[3, :4] = [0x7FC1, 0xFFFF, 0x7F81, 0xFF80]  # NaN payloads move unchanged
    idx = rng.integers(0, 40, 25).astype(np.int32)
    out.append(compare("gather bf16", ops.download(ops.gather(ops.upload(src), ops.upload(idx))), N.gather(src, idx)))
    srcf = corner_f32(rng, 40 * 5).reshape(40, 5)
    out.append(compare("gather fp32", ops.download(ops.gather(ops.upload(srcf), ops.upload(idx))), N.gather(srcf, idx)))
    dst = corner_bf16(rng, (12, 33))
    rows = np.array([3, 7, 3, 0, 11, 7], np.int32)  # repeated rows: the later one wins
    d = ops.upload(dst)
    ops.scatter(d, ops.upload(src[:6]), ops.upload(rows))
    out.append(compare("scatter", ops.download(d), N.scatter(dst, src[:6], rows)))
    acc = corner_f32(rng, 12 * 33).reshape(12, 33)
    w = corner_f32(rng, 6)
    a = ops.upload(acc)
    ops.scatter_add(a, ops.upload(src[:6]), ops.upload(rows), ops.upload(w))
    want = acc.copy()
    named = np.unique(rows)
    want[named] = store(N.scatter_add(acc, values(src[:6]), rows, w)[named], FP32)
    out.append(compare("scatter_add", ops.download(a), want))
    return out


def _check_attention(ops: Ops, rng) -> list[Comparison]:
    """GQA decode attention as the compiler emits it: gemm -> causal softmax -> gemm, batched
    over [KV heads, group], the cache read through transposed stride-0 views."""
    out = []
    for kvh, g, ctx, dh in ((2, 4, 300, 64), (1, 8, 37, 128), (8, 1, 129, 64)):
        q = _bf16_normal(rng, (kvh, g, 1, dh))
        kc, vc = _bf16_normal(rng, (ctx, kvh * dh)), _bf16_normal(rng, (ctx, kvh * dh))
        scale = float(np.float32(dh ** -0.5))
        it = kc.itemsize
        kt = np.lib.stride_tricks.as_strided(kc, (kvh, g, dh, ctx), (dh * it, 0, it, kvh * dh * it))
        v4 = np.lib.stride_tricks.as_strided(vc, (kvh, g, ctx, dh), (dh * it, 0, kvh * dh * it, it))
        p = store(N.softmax(N.gemm(values(q), values(kt)), scale, True, ctx - 1), BF16)
        want = store(N.gemm(values(p), values(v4)), BF16)
        dk, dv = ops.upload(kc), ops.upload(vc)
        s = ops.gemm(ops.upload(q), ops.view(dk, (kvh, g, dh, ctx), (dh, 0, 1, kvh * dh)), FP32)
        pd = ops.softmax(s, BF16, scale, True, ctx - 1)
        got = ops.gemm(pd, ops.view(dv, (kvh, g, ctx, dh), (dh, 0, kvh * dh, 1)), BF16)
        out.append(compare(f"attention decode kv_heads={kvh} group={g} ctx={ctx} Dh={dh}", ops.download(got), want))
    return out


def _check_fp8(ops: Ops, rng) -> list[Comparison]:
    """gemm_fp8 (bf16 and fp8 activations, a transposed [N, K] weight, partial blocks, stride-0 scales,
    batch axes, an fp8 KV cache read through transposed views with one per-tensor scale) and quant."""
    out = []
    for m, k, n, bk, bn, ak in ((5, 300, 200, 128, 128, BF16), (9, 256, 136, 128, 128, FP8), (3, 37, 19, 4, 8, FP8),
                                (1, 1, 1, 128, 128, BF16)):
        a = corner_bf16(rng, (m, k)) if ak == BF16 else rng.integers(0, 256, (m, k)).astype(np.uint8)
        w = rng.integers(0, 256, (n, k)).astype(np.uint8)  # every code, NaN included; read transposed
        kb, nb = -(-k // bk), -(-n // bn)
        sa, sb = rng.uniform(1e-3, 2, (m, kb)).astype(np.float32), rng.uniform(1e-4, 1, (kb, nb)).astype(np.float32)
        for dk in (BF16, FP32):
            want = store(N.gemm_fp8(values(a), values(w).T, sa, sb, bk, bn), dk)
            got = ops.gemm_fp8(ops.upload(a), ops.transpose(ops.upload(w)), ops.upload(sa), ops.upload(sb), bk, bn, dk)
            out.append(compare(f"gemm_fp8 {ak} [{m}x{k}]x[{k}x{n}] blocks {bk}x{bn} ->{dk}", ops.download(got), want))
    kvh, g, ctx, dh = 2, 4, 300, 64
    q = _bf16_normal(rng, (kvh, g, 1, dh))
    kc = N.quant(rng.standard_normal((ctx, kvh * dh)).astype(np.float32), np.float32([[0.01]]).repeat(ctx, 0), kvh * dh)
    it = kc.itemsize
    kt = np.lib.stride_tricks.as_strided(kc, (kvh, g, dh, ctx), (dh * it, 0, it, kvh * dh * it))
    one, s_kv = np.ones((kvh, g, 1, 1), np.float32), np.full((kvh, g, 1, 1), 0.01, np.float32)
    want = store(N.gemm_fp8(values(q), values(kt), one, s_kv, dh, ctx), FP32)
    dk_ = ops.upload(kc)
    got = ops.gemm_fp8(ops.upload(q), ops.view(dk_, (kvh, g, dh, ctx), (dh, 0, 1, kvh * dh)), ops.upload(one),
                       ops.upload(s_kv), dh, ctx, FP32)
    out.append(compare(f"gemm_fp8 fp8 KV cache scores kv_heads={kvh} group={g} ctx={ctx}", ops.download(got), want))
    for shape, group in (((7, 300), 128), ((2, 3, 64), 1), ((4, 512), 512)):
        x = np.concatenate([corner_f32(rng, x_n := int(np.prod(shape)) // 2), _fp8_ties(rng, x_n)]).reshape(shape)
        xb = corner_bf16(rng, shape)
        scale = rng.uniform(1e-3, 4, shape[:-1] + (-(-shape[-1] // group),)).astype(np.float32)
        for src in (x, xb):
            want = N.quant(values(src), scale, group)
            got = ops.download(ops.quant(ops.upload(src), ops.upload(scale), group))
            out.append(compare(f"quant {kind_name(src)} {list(shape)} group={group}", got, want))
    out += _act_quant_checks(ops, rng)
    return out


def _act_quant_checks(ops: Ops, rng: np.random.Generator) -> list[Comparison]:
    """act_quant's codes and scales, on corner values (NaN, infinities, zeros, subnormals), an all-zero
    group (the eps floor) and a partial last group."""
    out = []
    for shape, group in (((7, 300), 128), ((2, 3, 64), 16), ((4, 512), 512)):
        xf = corner_f32(rng, int(np.prod(shape))).reshape(shape)
        xf[0, ..., :group] = 0.0
        ordinary = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape[:-1] + (1,))).astype(np.float32)
        for src in (xf, corner_bf16(rng, shape), ordinary):
            codes, scale = N.act_quant(values(src), group)
            got_codes, got_scale = ops.act_quant(ops.upload(src), group)
            name = f"act_quant {kind_name(src)} {list(shape)} group={group}"
            out.append(compare(f"{name} codes", ops.download(got_codes), codes))
            out.append(compare(f"{name} scales", ops.download(got_scale), scale))
    return out


def kind_name(raw: np.ndarray) -> str:
    return "bf16" if raw.dtype == np.uint16 else "fp32"


CHECKS: dict[str, Callable[[Ops, np.random.Generator], list[Comparison]]] = {
    "cvt": _check_cvt, "unary": _check_unary, "binary": _check_binary, "gemm": _check_gemm, "rows": _check_rows,
    "topk-rope": _check_topk_rope, "dispatch": _check_dispatch, "attention": _check_attention, "fp8": _check_fp8,
}


def run_checks(ops: Ops, seed: int = 0, names: tuple[str, ...] | None = None) -> list[Comparison]:
    """Every check (or those named), each with its own generator seeded from ``seed``."""
    chosen = names or tuple(CHECKS)
    unknown = [n for n in chosen if n not in CHECKS]
    if unknown:
        raise ValueError(f"unknown kernel checks {unknown}; known: {', '.join(CHECKS)}")
    out: list[Comparison] = []
    with np.errstate(all="ignore"):  # the corner inputs overflow, divide by zero, make NaN
        for i, name in enumerate(chosen):
            out.extend(CHECKS[name](ops, np.random.default_rng([seed, i])))
    return out

