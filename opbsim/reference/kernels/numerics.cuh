// The scalar arithmetic of opbsim/isa/numerics.py and opbsim/isa/elementary.py in CUDA C.
//
// Every helper is one of: an IEEE-754 binary32 operation rounded to nearest even (__fadd_rn,
// __fsub_rn, __fmul_rn, __fdiv_rn, __fsqrt_rn: never contracted into a fused multiply-add),
// rintf (round half to even), or an exact operation (comparison, selection, negation, bit
// manipulation, multiplication by a power of two built from bits). Compile without fast-math
// and with -fmad=false (-ftz=false, -prec-div=true, -prec-sqrt=true are nvcc's defaults), so
// subnormals are kept and no step is fused or approximated.
//
// The helpers are __host__ __device__: in host code (the CPU check in tests/gpu, built by a
// C++ compiler with -ffp-contract=off) each intrinsic is the same IEEE operation written with
// C operators; nothing else differs.
// Constants are the binary32 bit patterns of the Python definitions, generated into
// opb_constants.cuh (reference/constants_header.py).
// Storage kinds: OPB_BF16 (uint16 bit patterns), OPB_FP32, OPB_I32, OPB_FP8 (e4m3 codes, uint8).
#ifndef OPBSIM_NUMERICS_CUH
#define OPBSIM_NUMERICS_CUH

#if !defined(__CUDACC_RTC__)
#include <cmath>
#include <cstring>
#endif
#if !defined(__CUDACC__)  // a plain C++ compiler (the host check): no CUDA qualifiers
#define __host__
#define __device__
#define __forceinline__ inline __attribute__((always_inline))
#endif

#define OPB_HD __host__ __device__ __forceinline__

#include "opb_constants.cuh"  // kind codes, NaNs, elementary-function constants, op codes

OPB_HD unsigned int opb_bits(float x) {
#ifdef __CUDA_ARCH__
    return __float_as_uint(x);
#else
    unsigned int u;
    memcpy(&u, &x, sizeof u);
    return u;
#endif
}

OPB_HD float opb_f(unsigned int u) {
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
#endif
}

#ifdef __CUDA_ARCH__
OPB_HD float opb_add(float a, float b) { return __fadd_rn(a, b); }
OPB_HD float opb_sub(float a, float b) { return __fsub_rn(a, b); }
OPB_HD float opb_mul(float a, float b) { return __fmul_rn(a, b); }
OPB_HD float opb_div(float a, float b) { return __fdiv_rn(a, b); }
OPB_HD float opb_sqrt(float a) { return __fsqrt_rn(a); }
OPB_HD float opb_i2f(int i) { return __int2float_rn(i); }
// cvt.rni.s32.f32: nearest, ties to even; saturates; NaN -> 0.
OPB_HD int opb_f2i(float x) { return __float2int_rn(x); }
#else
OPB_HD float opb_add(float a, float b) { return a + b; }
OPB_HD float opb_sub(float a, float b) { return a - b; }
OPB_HD float opb_mul(float a, float b) { return a * b; }
OPB_HD float opb_div(float a, float b) { return a / b; }
OPB_HD float opb_sqrt(float a) { return sqrtf(a); }
OPB_HD float opb_i2f(int i) { return (float)i; }
OPB_HD int opb_f2i(float x) {
    if (x != x) return 0;
    float r = rintf(x);
    if (r >= 2147483648.0f) return 2147483647;
    if (r < -2147483648.0f) return (int)(-2147483647 - 1);
    return (int)r;
}
#endif

OPB_HD bool opb_isnan(float x) { return (opb_bits(x) & 0x7FFFFFFFu) > 0x7F800000u; }
OPB_HD bool opb_isfinite(float x) { return (opb_bits(x) & 0x7F800000u) != 0x7F800000u; }
OPB_HD float opb_canonical(float x) { return opb_isnan(x) ? opb_f(OPB_F32_NAN) : x; }

// bf16 storage: widening is exact; rounding is RNE on the 16 dropped bits, NaN -> 0x7FC0.
OPB_HD float opb_bf16_widen(unsigned short b) { return opb_f(((unsigned int)b) << 16); }
OPB_HD unsigned short opb_bf16_round(float x) {
    if (opb_isnan(x)) return (unsigned short)OPB_BF16_NAN;
    unsigned int u = opb_bits(x);
    return (unsigned short)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// fp8 e4m3 storage (isa/fp8.py, OCP E4M3): widening is exact (S.1111.111 is NaN, no infinities);
// rounding is RNE on the 20 dropped bits of a normal (the subnormals: rintf of |x| * 2^9, exact),
// saturating to +-448 (|x| >= 448 and +-inf), NaN -> 0x7F.
OPB_HD float opb_fp8_widen(unsigned char c) {
    const unsigned int sign = ((unsigned int)c & 0x80u) << 24, e = ((unsigned int)c >> 3) & 0xFu, m = c & 7u;
    if (e == 15u && m == 7u) return opb_f(OPB_F32_NAN);
    if (e == 0u) return opb_f(opb_bits(opb_mul((float)m, opb_f(OPB_FP8_SUBNORMAL))) | sign);  // m * 2^-9
    return opb_f(sign | ((e + 120u) << 23) | (m << 20));  // exponent bias 7 -> 127
}
OPB_HD unsigned char opb_fp8_round(float x) {
    if (opb_isnan(x)) return (unsigned char)OPB_FP8_NAN;
    const unsigned int u = opb_bits(x), a = u & 0x7FFFFFFFu;
    const unsigned char sign = (unsigned char)((u >> 24) & 0x80u);
    if (a >= OPB_FP8_MAX) return (unsigned char)(sign | 0x7Eu);
    if (a < OPB_FP8_MIN_NORMAL) return (unsigned char)(sign | (unsigned int)rintf(opb_mul(opb_f(a), 512.0f)));
    return (unsigned char)(sign | (((a + 0x7FFFFu + ((a >> 20) & 1u)) >> 20) - (120u << 3)));
}

// Element i of a bf16, fp32 or e4m3 operand, widened to fp32 (exact).
OPB_HD float opb_load(const void* p, int kind, long long i) {
    if (kind == OPB_BF16) return opb_bf16_widen(((const unsigned short*)p)[i]);
    if (kind == OPB_FP8) return opb_fp8_widen(((const unsigned char*)p)[i]);
    return ((const float*)p)[i];
}

// numerics.store: the one rounding at an instruction's output (bf16 RNE; e4m3 RNE saturating;
// fp32 NaN canonical).
OPB_HD void opb_store(void* p, int kind, long long i, float v) {
    if (kind == OPB_BF16) {
        ((unsigned short*)p)[i] = opb_bf16_round(v);
    } else if (kind == OPB_FP8) {
        ((unsigned char*)p)[i] = opb_fp8_round(v);
    } else {
        ((float*)p)[i] = opb_canonical(v);
    }
}

// 2^e for integer e in [-126, 127], built from bits (exact).
OPB_HD float opb_pow2(int e) { return opb_f(((unsigned int)(e + 127)) << 23); }

// elementary.exp_scaled: e^x * 2^s, 0 <= s <= 64 (steps 1-6 of elementary.exp).
OPB_HD float opb_exp_scaled(float x, int s) {
    if (opb_isnan(x)) return opb_f(OPB_F32_NAN);
    float lo = opb_sub(opb_f(OPB_EXP_LO), (float)s);
    float hi = opb_f(OPB_EXP_HI);
    float c = x < lo ? lo : x;
    c = c > hi ? hi : c;
    float n = rintf(opb_mul(c, opb_f(OPB_LOG2E)));
    float r = opb_sub(c, opb_mul(n, opb_f(OPB_LN2_HI)));
    r = opb_sub(r, opb_mul(n, opb_f(OPB_LN2_LO)));
    float p = opb_f(OPB_EXP_P0);
    p = opb_add(opb_mul(p, r), opb_f(OPB_EXP_P1));
    p = opb_add(opb_mul(p, r), opb_f(OPB_EXP_P2));
    p = opb_add(opb_mul(p, r), opb_f(OPB_EXP_P3));
    p = opb_add(opb_mul(p, r), opb_f(OPB_EXP_P4));
    p = opb_add(opb_mul(p, r), opb_f(OPB_EXP_P5));
    float y = opb_mul(p, opb_mul(r, r));
    y = opb_add(y, r);
    y = opb_add(y, 1.0f);
    int ni = (int)n + s;  // exact: |n| <= 243
    int h = ni >> 1;      // arithmetic shift: floor(ni / 2)
    return opb_mul(opb_mul(y, opb_pow2(h)), opb_pow2(ni - h));
}

OPB_HD float opb_exp(float x) { return opb_exp_scaled(x, 0); }

// elementary.rsqrt: sqrt, then 1 / sqrt; NaN canonical.
OPB_HD float opb_rsqrt(float x) { return opb_canonical(opb_div(1.0f, opb_sqrt(x))); }

// elementary.sincos: (sin a, cos a); a non-finite angle gives NaN for both.
OPB_HD void opb_sincos(float a, float* sin_out, float* cos_out) {
    if (!opb_isfinite(a)) {
        *sin_out = opb_f(OPB_F32_NAN);
        *cos_out = opb_f(OPB_F32_NAN);
        return;
    }
    const unsigned int parts[4] = {OPB_PIO2_0, OPB_PIO2_1, OPB_PIO2_2, OPB_PIO2_3};
    float k = rintf(opb_mul(a, opb_f(OPB_TWO_OVER_PI)));
    float kh = opb_mul(rintf(opb_mul(k, opb_f(OPB_TWO_M12))), opb_f(OPB_TWO_P12));
    float kl = opb_sub(k, kh);
    float r = a;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
        r = opb_sub(r, opb_mul(kh, opb_f(parts[j])));
        r = opb_sub(r, opb_mul(kl, opb_f(parts[j])));
    }
    float z = opb_mul(r, r);
    float s = opb_mul(opb_f(OPB_SIN_P0), z);
    s = opb_add(s, opb_f(OPB_SIN_P1));
    s = opb_mul(s, z);
    s = opb_add(s, opb_f(OPB_SIN_P2));
    s = opb_mul(s, z);
    s = opb_mul(s, r);
    s = opb_add(s, r);
    float c = opb_mul(opb_f(OPB_COS_P0), z);
    c = opb_add(c, opb_f(OPB_COS_P1));
    c = opb_mul(c, z);
    c = opb_add(c, opb_f(OPB_COS_P2));
    c = opb_mul(c, z);
    c = opb_mul(c, z);
    c = opb_sub(c, opb_mul(0.5f, z));
    c = opb_add(c, 1.0f);
    // k mod 4 in 0..3. Every binary32 integer of magnitude >= 2^25 is a multiple of 4, so
    // the quadrant of |k| >= 2^62 is 0 (numpy's int64 conversion agrees: exact below 2^63,
    // INT64_MIN above).
    long long ki = fabsf(k) < opb_f(OPB_TWO_P62) ? (long long)k : 0;
    int q = (int)(((ki % 4) + 4) % 4);
    *sin_out = q == 0 ? s : q == 1 ? c : q == 2 ? -s : -c;
    *cos_out = q == 0 ? c : q == 1 ? -s : q == 2 ? -c : s;
}

// numerics._times_sigmoid: x / (1 + exp(-z)) without overflow or lost bits for z < 0.
OPB_HD float opb_times_sigmoid(float x, float z) {
    float y;
    if (z < 0.0f) {
        float es = opb_exp_scaled(z, 64);
        float e = opb_mul(es, opb_f(OPB_TWO_M64));
        float d = opb_add(1.0f, e);
        y = opb_mul(opb_div(opb_mul(x, es), d), opb_f(OPB_TWO_M64));
    } else {
        float d = opb_add(1.0f, opb_exp(-z));
        y = opb_div(x, d);
    }
    return opb_bits(x) == OPB_NEG_INF ? opb_f(OPB_NEG_ZERO) : y;
}

OPB_HD float opb_silu(float x) { return opb_times_sigmoid(x, x); }

OPB_HD float opb_gelu(float x) {
    float t = opb_mul(opb_f(OPB_GELU_C2), opb_mul(x, x));
    float z = opb_mul(x, opb_add(t, opb_f(OPB_GELU_C1)));
    return opb_times_sigmoid(x, z);
}

OPB_HD float opb_relu(float x) { return (opb_isnan(x) || x > 0.0f) ? x : 0.0f; }

// numerics.topk's total order: NaN above +inf, then numeric order, +0 equal to -0.
OPB_HD long long opb_topk_key(float x) {
    if (opb_isnan(x)) return 1LL << 31;
    int b = (int)opb_bits(x);
    return b >= 0 ? (long long)b : -(long long)(b & 0x7FFFFFFF);
}

// Does (va at index ia) rank before (vb at index ib) in topk's order? Ties: lower index first.
OPB_HD bool opb_topk_before(float va, int ia, float vb, int ib) {
    long long ka = opb_topk_key(va), kb = opb_topk_key(vb);
    return ka > kb || (ka == kb && ia < ib);
}

// The reduction order equivalent to numerics.reduce_max's sequential scan: any NaN wins
// (every NaN gives the same stored result), else the larger value, and among equal values
// (+0 and -0) the lower index, which is the one the sequential scan keeps.
OPB_HD bool opb_max_before(float va, int ia, float vb, int ib) {
    bool na = opb_isnan(va), nb = opb_isnan(vb);
    if (na || nb) return na && (!nb || ia < ib);
    if (va > vb) return true;
    if (vb > va) return false;
    return ia < ib;
}

// ---- Per-element and per-row bodies shared by the kernels and the host check -------------

// exp, rsqrt, silu, sigmoid, relu, gelu, or exp_scaled with s = param.
OPB_HD float opb_unary_op(int op, float v, int param) {
    switch (op) {
        case OPB_OP_EXP: return opb_exp(v);
        case OPB_OP_RSQRT: return opb_rsqrt(v);
        case OPB_OP_SILU: return opb_silu(v);
        case OPB_OP_SIGMOID: return opb_times_sigmoid(1.0f, v);
        case OPB_OP_RELU: return opb_relu(v);
        case OPB_OP_GELU: return opb_gelu(v);
        default: return opb_exp_scaled(v, param);
    }
}

OPB_HD float opb_binary_op(int op, float u, float v) {
    switch (op) {
        case OPB_OP_ADD: return opb_add(u, v);
        case OPB_OP_SUB: return opb_sub(u, v);
        case OPB_OP_MUL: return opb_mul(u, v);
        default: return opb_div(u, v);
    }
}

// numerics.cvt of element i between any two kinds: float -> float is store; i32 -> float is
// RNE, then store; float -> i32 rounds to nearest even, saturating, NaN -> 0; i32 -> i32 copies.
OPB_HD void opb_cvt_elem(const void* x, int x_kind, void* y, int y_kind, long long i) {
    if (x_kind == OPB_I32 && y_kind == OPB_I32) {
        ((int*)y)[i] = ((const int*)x)[i];
    } else if (x_kind == OPB_I32) {
        opb_store(y, y_kind, i, opb_i2f(((const int*)x)[i]));
    } else if (y_kind == OPB_I32) {
        ((int*)y)[i] = opb_f2i(opb_load(x, x_kind, i));
    } else {
        opb_store(y, y_kind, i, opb_load(x, x_kind, i));
    }
}

// max (op 0: numerics.reduce_max, NaN or strictly greater replaces) or sum (op 1: seq_sum)
// of row `row` of [rows, C], stored at y[row].
OPB_HD void opb_reduce_row(const void* x, int x_kind, void* y, int y_kind, long long row, int C, int op) {
    const long long base = row * C;
    float acc;
    if (op == 0) {
        acc = opb_load(x, x_kind, base);
        for (int j = 1; j < C; ++j) {
            const float v = opb_load(x, x_kind, base + j);
            if (v > acc || opb_isnan(v)) acc = v;
        }
    } else {
        acc = 0.0f;
        for (int j = 0; j < C; ++j) acc = opb_add(acc, opb_load(x, x_kind, base + j));
    }
    opb_store(y, y_kind, row, acc);
}

// numerics.clamp: lo where v < lo (with lower), hi where that is > hi, else v (-0 stays -0
// against a bound of +0); NaN compares false, so it is kept.
OPB_HD float opb_clamp(float v, float lo, float hi, int lower) {
    const float m = (lower && v < lo) ? lo : v;
    return (m > hi) ? hi : m;
}

// numerics.topk_grouped on row `row` of x [rows, E] with the choice bias [E] (see its definition):
// c = x + bias; each of the `groups` groups scored by the sum of its two best c in topk order;
// the `keep` best groups stay (ties to the lower group), elsewhere c = +0; the k best c give idx,
// x at idx the values. No scratch beyond the group scores: O((k + groups) E).
OPB_HD float opb_choice(const void* x, int x_kind, const void* bias, int b_kind, long long base, int e) {
    return opb_add(opb_load(x, x_kind, base + e), opb_load(bias, b_kind, e));
}

OPB_HD void opb_topk_grouped_row(const void* x, int x_kind, const void* bias, int b_kind, void* vals, int v_kind,
                                 int* idx, long long row, int E, int k, int groups, int keep) {
    const long long base = row * E;
    const int per = E / groups;
    float score[OPB_MAX_GROUPS];
    bool kept[OPB_MAX_GROUPS];
    for (int g = 0; g < groups; ++g) {
        float v1 = 0.0f, v2 = 0.0f;
        int i1 = -1, i2 = -1;
        for (int j = g * per; j < (g + 1) * per; ++j) {
            const float v = opb_choice(x, x_kind, bias, b_kind, base, j);
            if (i1 < 0 || opb_topk_before(v, j, v1, i1)) {
                v2 = v1; i2 = i1; v1 = v; i1 = j;
            } else if (i2 < 0 || opb_topk_before(v, j, v2, i2)) {
                v2 = v; i2 = j;
            }
        }
        score[g] = (i2 < 0) ? v1 : opb_add(v1, v2);
        kept[g] = false;
    }
    for (int t = 0; t < keep; ++t) {
        int best = -1;
        for (int g = 0; g < groups; ++g) {
            if (!kept[g] && (best < 0 || opb_topk_before(score[g], g, score[best], best))) best = g;
        }
        kept[best] = true;
    }
    float prev_v = 0.0f;
    int prev_i = -1;
    for (int t = 0; t < k; ++t) {
        float best_v = 0.0f;
        int best_i = -1;
        for (int j = 0; j < E; ++j) {
            const float v = kept[j / per] ? opb_choice(x, x_kind, bias, b_kind, base, j) : 0.0f;
            if (prev_i >= 0 && !opb_topk_before(prev_v, prev_i, v, j)) continue;
            if (best_i < 0 || opb_topk_before(v, j, best_v, best_i)) {
                best_v = v;
                best_i = j;
            }
        }
        opb_store(vals, v_kind, row * k + t, opb_load(x, x_kind, base + best_i));
        idx[row * k + t] = best_i;
        prev_v = best_v;
        prev_i = best_i;
    }
}

// topk of row `row` of [rows, E]: the k first entries in topk's order (NaN first, then
// descending, +0 == -0, ties to the lower index), values stored to v_kind, int32 indices.
// Pick t is the best entry ranking after pick t - 1: no scratch, O(k E).
OPB_HD void opb_topk_row(const void* x, int x_kind, void* vals, int v_kind, int* idx, long long row, int E,
                         int k) {
    const long long base = row * E;
    float prev_v = 0.0f;
    int prev_i = -1;
    for (int t = 0; t < k; ++t) {
        float best_v = 0.0f;
        int best_i = -1;
        for (int j = 0; j < E; ++j) {
            const float v = opb_load(x, x_kind, base + j);
            if (prev_i >= 0 && !opb_topk_before(prev_v, prev_i, v, j)) continue;
            if (best_i < 0 || opb_topk_before(v, j, best_v, best_i)) {
                best_v = v;
                best_i = j;
            }
        }
        opb_store(vals, v_kind, row * k + t, best_v);
        idx[row * k + t] = best_i;
        prev_v = best_v;
        prev_i = best_i;
    }
}

// act_quant of group t of x [rows, H] (contiguous; G groups of `group` per row, the last may be partial):
// a = max |x| over the group, NaN if any element is NaN (fmaxf would drop it); s = max(a, 1e-10f) / 448
// (correctly rounded; a NaN s is the canonical one); scale[t] = s; y = e4m3(x / s) as opb_quant (numerics_fp8.act_quant).
OPB_HD void opb_act_quant_group(const void* x, int x_kind, unsigned char* y, float* scale, long long t, int H, int G,
                                int group) {
    const long long row = t / G;
    const int first = (int)(t % G) * group;
    const int last = first + group < H ? first + group : H;
    float amax = 0.0f;
    for (int c = first; c < last && amax == amax; ++c) {
        const float a = fabsf(opb_load(x, x_kind, row * H + c));
        if (a != a || a > amax) amax = a;
    }
    const float s = amax != amax ? opb_canonical(amax) : opb_div(amax > 1e-10f ? amax : 1e-10f, 448.0f);
    scale[t] = s;
    for (int c = first; c < last; ++c) y[row * H + c] = opb_fp8_round(opb_div(opb_load(x, x_kind, row * H + c), s));
}

// rope of pair e of x [N0, T, D] (contiguous; e < N0 * T * D/2): angle fp32(pos[t]) * f[i]
// with the host's table f (the instruction's freq operand: elementary.rope_inv_freq or a scaling of
// it, isa/rope_freq.py), cos and sin multiplied by mscale, then the rotation of numerics.rope.
OPB_HD void opb_rope_pair(const void* x, int x_kind, const int* pos, const float* inv_freq, void* y, int y_kind,
                          long long e, int T, int D, float mscale) {
    const int h = D / 2;
    const int i = (int)(e % h);
    const int t = (int)((e / h) % T);
    const long long base = (e / h) * D;
    const float x1 = opb_load(x, x_kind, base + i), x2 = opb_load(x, x_kind, base + i + h);
    float s, c;
    opb_sincos(opb_mul(opb_i2f(pos[t]), inv_freq[i]), &s, &c);
    s = opb_mul(s, mscale);
    c = opb_mul(c, mscale);
    opb_store(y, y_kind, base + i, opb_sub(opb_mul(x1, c), opb_mul(x2, s)));
    opb_store(y, y_kind, base + i + h, opb_add(opb_mul(x2, c), opb_mul(x1, s)));
}

#endif  // OPBSIM_NUMERICS_CUH
