"""The exact GEMM's compiled parts: a register tile and a panel packer as numba intrinsics that
emit LLVM IR with explicit 16-lane vectors, and the numba drivers that use them (the schedule is
described in kernels.py).

``tile(rows)`` is an intrinsic for numba code::

    tile(ap, ao, bp, bo, kc, c, co, ldc, nw)

For k = 0..kc-1 in order, for i < rows and j < nw (1 <= nw <= 16)::

    c[co + i*ldc + j] = c[co + i*ldc + j] + (ap[ao + 16*k + i] * bp[bo + 16*k + j])

(ap, bp, c: 1-D float32 arrays; A packed 16 rows per k, B packed 16 columns per k). The ``rows``
x 16 block of C lives in vector registers for the whole loop: loaded once (masked to ``nw``
columns), ``rows`` products and ``rows`` sums per k, stored once. Each product is an ``fmul`` and
each sum an ``fadd`` without fast-math flags, so LLVM neither contracts nor reassociates: every
element sees exactly numerics.gemm's operations. The A scalar is broadcast inside the multiply
(AVX-512 embedded broadcast), so a 16-row tile issues one load per multiply and no separate
broadcast: on the machine measured (AMD Zen 4, benchmarks/results/bench_exact.md) it runs as fast
as the same tile with fused multiply-adds. The C rows of the next tile down are prefetched.

``pack16`` widens 16 rows of bf16 bits (k contiguous) into fp32 bits and transposes each 16 x 16
block in registers, so a panel comes out k-major. Offsets are in elements; nothing is
bounds-checked (the callers size the arrays).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import binding, ir
from numba import njit, prange, types
from numba.extending import intrinsic

__all__ = ["LANES", "blocked_par", "blocked_ser", "fp8_blocks_par", "fp8_blocks_ser", "pack16", "tile"]

LANES = 16  # float32 lanes of one vector: the width of a B panel and of the C tile
_F32 = ir.FloatType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_VEC = ir.VectorType(_F32, LANES)
_MASK = ir.VectorType(ir.IntType(1), LANES)


def _i64(builder, v):
    return builder.sext(v, _I64) if v.type.width < 64 else v


def _masked(builder, name, ftype):
    fn = builder.module.globals.get(name)
    return fn if fn is not None else ir.Function(builder.module, ftype, name)


def _emit(rows, builder, ap, ao, bp, bo, kc, c, co, ldc, nw):
    """The IR of one tile call (see the module docstring); pointers are float*."""
    vptr = _VEC.as_pointer()
    load = _masked(builder, "llvm.masked.load.v16f32.p0",
                   ir.FunctionType(_VEC, [vptr, _I32, _MASK, _VEC]))
    store = _masked(builder, "llvm.masked.store.v16f32.p0",
                    ir.FunctionType(ir.VoidType(), [_VEC, vptr, _I32, _MASK]))
    lanes = ir.Constant(ir.VectorType(_I32, LANES), list(range(LANES)))
    undef_i = ir.Constant(ir.VectorType(_I32, LANES), ir.Undefined)
    zeros_i = ir.Constant(ir.VectorType(_I32, LANES), [0] * LANES)
    nw_splat = builder.shuffle_vector(builder.insert_element(undef_i, builder.trunc(nw, _I32), ir.Constant(_I32, 0)),
                                      undef_i, zeros_i)
    mask = builder.icmp_unsigned("<", lanes, nw_splat)
    zero_v = ir.Constant(_VEC, [0.0] * LANES)
    align = ir.Constant(_I32, 4)

    def at(base, off, ty=vptr):
        return builder.bitcast(builder.gep(base, [off]), ty)

    c_rows = [at(c, builder.add(co, builder.mul(ldc, ir.Constant(_I64, i)))) for i in range(rows)]
    start = [builder.call(load, [p, align, mask, zero_v]) for p in c_rows]
    i8p = ir.IntType(8).as_pointer()
    prefetch = _masked(builder, "llvm.prefetch.p0", ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]))
    for i in range(rows, 2 * rows):  # the next row tile's C (non-faulting; into L2)
        row = builder.add(co, builder.mul(ldc, ir.Constant(_I64, i)))
        for j in (0, LANES - 1):
            p = at(c, builder.add(row, ir.Constant(_I64, j)), i8p)
            builder.call(prefetch, [p, ir.Constant(_I32, 1), ir.Constant(_I32, 2), ir.Constant(_I32, 1)])
    pre, body, done, k = _counted_loop(builder, kc, "tile_k")
    sums = []
    for v in start:
        phi = builder.phi(_VEC)
        phi.add_incoming(v, pre)
        sums.append(phi)
    step = builder.mul(k, ir.Constant(_I64, LANES))
    b_vec = builder.load(at(bp, builder.add(bo, step)), align=4)
    a_base = builder.add(ao, step)
    undef_v = ir.Constant(_VEC, ir.Undefined)
    new = []
    for i in range(rows):
        a = builder.load(builder.gep(ap, [builder.add(a_base, ir.Constant(_I64, i))]), align=4)
        a_vec = builder.shuffle_vector(builder.insert_element(undef_v, a, ir.Constant(_I32, 0)), undef_v, zeros_i)
        new.append(builder.fadd(sums[i], builder.fmul(a_vec, b_vec)))
    k_next = builder.add(k, ir.Constant(_I64, 1))
    k.add_incoming(k_next, body)
    for phi, v in zip(sums, new):
        phi.add_incoming(v, body)
    builder.cbranch(builder.icmp_signed("<", k_next, kc), body, done)

    builder.position_at_end(done)
    outs = []
    for v0, v1 in zip(start, new):
        out = builder.phi(_VEC)
        out.add_incoming(v0, pre)
        out.add_incoming(v1, body)
        outs.append(out)
    for out, p in zip(outs, c_rows):
        builder.call(store, [out, p, align, mask])


def _float_vector(ty) -> bool:
    return isinstance(ty, types.Array) and ty.ndim == 1 and ty.dtype == types.float32


def tile(rows: int):
    """The intrinsic for a ``rows`` x 16 tile (1 <= rows <= 16)."""
    if not 1 <= rows <= LANES:
        raise ValueError(f"a tile has 1..{LANES} rows, not {rows}")

    @intrinsic
    def _tile(typingctx, ap, ao, bp, bo, kc, c, co, ldc, nw):
        if not (_float_vector(ap) and _float_vector(bp) and _float_vector(c)):
            return None
        i = types.intp
        sig = types.void(ap, i, bp, i, i, c, i, i, i)

        def codegen(context, builder, signature, args):
            ptr = [context.make_array(signature.args[j])(context, builder, args[j]).data for j in (0, 2, 5)]
            ints = [_i64(builder, args[j]) for j in (1, 3, 4, 6, 7, 8)]
            _emit(rows, builder, ptr[0], ints[0], ptr[1], ints[1], ints[2], ptr[2], ints[3], ints[4], ints[5])
            return context.get_dummy_value()

        return sig, codegen

    return _tile


def _transpose(builder, rows):
    """The 16 x 16 transpose of ``rows`` (16 vectors) in four rounds of two-vector shuffles: round
    d swaps the off-diagonal d x d blocks of every 2d x 2d block (d = 8, 4, 2, 1)."""
    rows = list(rows)
    d = LANES // 2
    while d:
        lo = ir.Constant(ir.VectorType(_I32, LANES), [LANES + e - d if e & d else e for e in range(LANES)])
        hi = ir.Constant(ir.VectorType(_I32, LANES), [LANES + e if e & d else e + d for e in range(LANES)])
        for i in range(LANES):
            if not i & d:
                x, y = rows[i], rows[i + d]
                rows[i], rows[i + d] = builder.shuffle_vector(x, y, lo), builder.shuffle_vector(x, y, hi)
        d //= 2
    return rows


def _counted_loop(builder, count, name: str):
    """Opens a loop of ``count`` (i64) iterations: branches to a new block ``name`` when count > 0,
    else past it, and leaves the builder in the loop's block. Returns (the block before, the loop's
    block, the block after, the index phi: 0 on entry; the caller adds its next value and the
    back edge)."""
    pre = builder.block
    body = builder.append_basic_block(name)
    done = builder.append_basic_block(f"{name}_done")
    zero = ir.Constant(_I64, 0)
    builder.cbranch(builder.icmp_signed(">", count, zero), body, done)
    builder.position_at_end(body)
    index = builder.phi(_I64)
    index.add_incoming(zero, pre)
    return pre, body, done, index


def _emit_pack(builder, src, so, sr, groups, dst, do):
    """dst[do + 16*k + r] = fp32 bits of src[so + r*sr + k] for r < 16, k < 16*groups (u16 -> u32 << 16)."""
    i16v = ir.VectorType(ir.IntType(16), LANES)
    i32v = ir.VectorType(_I32, LANES)
    shift = ir.Constant(i32v, [16] * LANES)
    _, body, done, g = _counted_loop(builder, groups, "pack_g")
    k0 = builder.mul(g, ir.Constant(_I64, LANES))
    loaded = []
    for r in range(LANES):
        off = builder.add(builder.add(so, builder.mul(sr, ir.Constant(_I64, r))), k0)
        v = builder.load(builder.bitcast(builder.gep(src, [off]), i16v.as_pointer()), align=2)
        loaded.append(builder.shl(builder.zext(v, i32v), shift))
    out = _transpose(builder, loaded)
    base = builder.add(do, builder.mul(k0, ir.Constant(_I64, LANES)))
    for kk in range(LANES):
        p = builder.gep(dst, [builder.add(base, ir.Constant(_I64, kk * LANES))])
        builder.store(out[kk], builder.bitcast(p, i32v.as_pointer()), align=4)
    g_next = builder.add(g, ir.Constant(_I64, 1))
    g.add_incoming(g_next, body)
    builder.cbranch(builder.icmp_signed("<", g_next, groups), body, done)
    builder.position_at_end(done)


@intrinsic
def pack16(typingctx, src, so, sr, groups, dst, do):
    """pack16(src, so, sr, groups, dst, do): 16 rows of bf16 bits, row r at src.flat[so + r*sr + k]
    (element offsets from src's first element, k contiguous), widened to fp32 bits and written
    k-major: dst[do + 16*k + r] for k < 16*groups. src: any uint16 array; dst: 1-D uint32."""
    if not (isinstance(src, types.Array) and src.dtype == types.uint16 and isinstance(dst, types.Array)
            and dst.ndim == 1 and dst.dtype == types.uint32):
        return None
    i = types.intp
    sig = types.void(src, i, i, i, dst, i)

    def codegen(context, builder, signature, args):
        s_ptr = context.make_array(signature.args[0])(context, builder, args[0]).data
        d_ptr = context.make_array(signature.args[4])(context, builder, args[4]).data
        _emit_pack(builder, s_ptr, _i64(builder, args[1]), _i64(builder, args[2]), _i64(builder, args[3]),
                   d_ptr, _i64(builder, args[5]))
        return context.get_dummy_value()

    return sig, codegen


# The drivers live beside the intrinsics they inline: numba re-validates a cached function only
# against its own source file, so an edit here must invalidate them too.
_OPTS = dict(error_model="numpy", cache=True, nogil=True)
_T16, _T8, _T4, _T2, _T1 = (tile(r) for r in (16, 8, 4, 2, 1))


def _has_avx512() -> bool:
    """Whether numba compiles for a CPU with 32 512-bit registers (else a 16-lane vector is two
    of AVX2's sixteen 256-bit registers, and tiles taller than 4 rows would spill)."""
    features = numba.config.CPU_FEATURES
    if features:
        return "+avx512f" in features.split(",")
    return bool(binding.get_host_cpu_features().get("avx512f", False))


_TALL = _has_avx512()  # 16- and 8-row tiles


@njit(**_OPTS)
def _pack_a(a, mb, ap):
    """ap[(mb*K + k)*16 + i] = fp32 bits of a[16*mb + i, k]; rows past M are zero."""
    m, k_dim = a.shape
    apu = ap.view(np.uint32)
    base = mb * k_dim * LANES
    rows = min(LANES, m - mb * LANES)
    done = 0
    if rows == LANES and a.strides[1] == 2:  # sixteen rows, k contiguous: transposed in registers
        s0 = a.strides[0] // 2
        pack16(a, mb * LANES * s0, s0, k_dim // LANES, apu, base)
        done = k_dim - k_dim % LANES
    for k in range(done, k_dim):
        for i in range(rows):
            apu[base + k * LANES + i] = np.uint32(a[mb * LANES + i, k]) << np.uint32(16)
        for i in range(rows, LANES):
            apu[base + k * LANES + i] = 0


@njit(**_OPTS)
def _pack_b(b, k0, kc, n0, nw, bp):
    """bp[16*k + j] = fp32 bits of b[k0 + k, n0 + j] for k < kc, j < nw; zero for j >= nw."""
    bpu = bp.view(np.uint32)
    done = 0
    if nw == LANES and b.strides[0] == 2:  # a transposed weight view: transposed in registers
        s1 = b.strides[1] // 2
        pack16(b, k0 + n0 * s1, s1, kc // LANES, bpu, 0)
        done = kc - kc % LANES
    for k in range(done, kc):
        for j in range(nw):
            bpu[k * LANES + j] = np.uint32(b[k0 + k, n0 + j]) << np.uint32(16)
        for j in range(nw, LANES):
            bpu[k * LANES + j] = 0


@njit(**_OPTS)
def _rows(ap, k_dim, k0, kc, bp, c, ldc, m0, m1, n0, nw):
    """Rows m0..m1-1 of C, columns n0..n0+nw-1, += their k block: 16-row tiles, then 8, 4, 2, 1
    (4-row tiles at most without AVX-512)."""
    i = m0
    while i < m1:
        left = m1 - i
        ao = ((i // LANES) * k_dim + k0) * LANES + i % LANES
        co = i * ldc + n0
        if left >= 16 and _TALL:
            _T16(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 16
        elif left >= 8 and _TALL:
            _T8(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 8
        elif left >= 4:
            _T4(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 4
        elif left >= 2:
            _T2(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 2
        else:
            _T1(ap, ao, bp, 0, kc, c, co, ldc, nw)
            i += 1


@njit(**_OPTS)
def _item(a, b, ap, c, mc, nc, kb, item):
    """One work item: rows [m0, m0 + mc) x columns [c0, c0 + nc) of C; per k block in order, per
    16-column B panel: pack the panel, run every row tile of the item over it."""
    m, k_dim = a.shape
    n = b.shape[1]
    n_nc = (n + nc - 1) // nc
    m0 = (item // n_nc) * mc
    m1 = min(m, m0 + mc)
    c0 = (item % n_nc) * nc
    c1 = min(n, c0 + nc)
    bp = np.empty(kb * LANES, np.float32)
    for k0 in range(0, k_dim, kb):
        kc = min(kb, k_dim - k0)
        for n0 in range(c0, c1, LANES):
            nw = min(LANES, c1 - n0)
            _pack_b(b, k0, kc, n0, nw, bp)
            _rows(ap, k_dim, k0, kc, bp, c, n, m0, m1, n0, nw)


# Two drivers, not one function compiled twice: numba's cache names a file by function and line,
# so a serial and a parallel compilation of one function would load each other's code.
@njit(parallel=True, **_OPTS)
def blocked_par(a, b, c, mc, nc, kb):
    """c (acc flattened) += a x b: A packed once (parallel over 16-row blocks), then the work items."""
    m, k_dim = a.shape
    n_mb = (m + LANES - 1) // LANES
    ap = np.empty(n_mb * k_dim * LANES, np.float32)
    for mb in prange(n_mb):
        _pack_a(a, mb, ap)
    for item in prange(((m + mc - 1) // mc) * ((b.shape[1] + nc - 1) // nc)):
        _item(a, b, ap, c, mc, nc, kb, item)


@njit(**_OPTS)
def blocked_ser(a, b, c, mc, nc, kb):
    """blocked_par on the calling thread."""
    m, k_dim = a.shape
    n_mb = (m + LANES - 1) // LANES
    ap = np.empty(n_mb * k_dim * LANES, np.float32)
    for mb in range(n_mb):
        _pack_a(a, mb, ap)
    for item in range(((m + mc - 1) // mc) * ((b.shape[1] + nc - 1) // nc)):
        _item(a, b, ap, c, mc, nc, kb, item)


@njit(**_OPTS)
def _fp8_panel(b, lut, k0, kc, n0, nw, bp):
    """bp[16*k + j] = lut[b[k0 + k, n0 + j]] (e4m3 decoded, exact) for k < kc, j < nw; zero for j >= nw."""
    for j in range(nw):
        for k in range(kc):
            bp[k * LANES + j] = lut[b[k0 + k, n0 + j]]
    for j in range(nw, LANES):
        for k in range(kc):
            bp[k * LANES + j] = 0.0


@njit(**_OPTS)
def _fp8_columns(ap, b, lut, sa, sb, block_k, block_n, out, panel):
    """Columns [16 panel, 16 panel + 16) of out: per k block in order, the block's partial sums from +0
    by the register tiles (k in order), then acc = acc + ((sa * sb) * p); stored once."""
    m = out.shape[0]
    k_dim, n = b.shape
    n0 = panel * LANES
    nw = min(LANES, n - n0)
    bp = np.empty(block_k * LANES, np.float32)
    pc = np.empty(m * LANES, np.float32)
    acc = np.zeros(m * LANES, np.float32)
    for j in range((k_dim + block_k - 1) // block_k):
        k0 = j * block_k
        kc = min(block_k, k_dim - k0)
        _fp8_panel(b, lut, k0, kc, n0, nw, bp)
        pc[:] = 0.0
        _rows(ap, k_dim, k0, kc, bp, pc, LANES, 0, m, 0, nw)
        for col in range(nw):
            scale_b = sb[j, (n0 + col) // block_n]
            for i in range(m):
                acc[i * LANES + col] = acc[i * LANES + col] + (sa[i, j] * scale_b) * pc[i * LANES + col]
    for i in range(m):
        for col in range(nw):
            out[i, n0 + col] = acc[i * LANES + col]


@njit(parallel=True, **_OPTS)
def fp8_blocks_par(a, b, lut, sa, sb, block_k, block_n, out):
    """out [M, N] = numerics_fp8.gemm_fp8 of bf16 bits a [M, K] and e4m3 codes b [K, N] (any strides),
    sa [M, KB], sb [KB, NB]: A packed once, then the 16-column panels in parallel (``_fp8_columns``)."""
    m, k_dim = a.shape
    n_mb = (m + LANES - 1) // LANES
    ap = np.empty(n_mb * k_dim * LANES, np.float32)
    for mb in prange(n_mb):
        _pack_a(a, mb, ap)
    for panel in prange((b.shape[1] + LANES - 1) // LANES):
        _fp8_columns(ap, b, lut, sa, sb, block_k, block_n, out, panel)


@njit(**_OPTS)
def fp8_blocks_ser(a, b, lut, sa, sb, block_k, block_n, out):
    """fp8_blocks_par on the calling thread."""
    m, k_dim = a.shape
    n_mb = (m + LANES - 1) // LANES
    ap = np.empty(n_mb * k_dim * LANES, np.float32)
    for mb in range(n_mb):
        _pack_a(a, mb, ap)
    for panel in range((b.shape[1] + LANES - 1) // LANES):
        _fp8_columns(ap, b, lut, sa, sb, block_k, block_n, out, panel)
