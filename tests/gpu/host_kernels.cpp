// Every kernel of opbsim/reference/kernels/*.cu as a sequential host function with the same
// name and parameters, preceded by the launch geometry (grid x, y, z; block x, y, z). Built by a
// C++ compiler (-ffp-contract=off, no fast-math) and driven by host_device.py, which stands in
// for a GPU backend: GpuOps' argument marshalling, strides, offsets and launch geometry, and the
// layers composed on it, run on the CPU through the same scalar helpers (numerics.cuh) the
// kernels use. Each function computes what its kernel computes for the outputs its grid
// covers; the order of every sum is the kernel's (one sequential chain per output).
#include "numerics.cuh"

#define GEOM int gx, int gy, int gz, int bx, int by, int bz
#define UNUSED_GEOM (void)gx, (void)gy, (void)gz, (void)bx, (void)by, (void)bz

extern "C" {

void opb_unary(GEOM, const void* x, void* y, long long n, int x_kind, int y_kind, int op, int param) {
    UNUSED_GEOM;
    for (long long i = 0; i < n; ++i) opb_store(y, y_kind, i, opb_unary_op(op, opb_load(x, x_kind, i), param));
}

void opb_binary(GEOM, const void* a, const void* b, void* y, long long n, int a_kind, int b_kind, int y_kind,
                int op) {
    UNUSED_GEOM;
    for (long long i = 0; i < n; ++i) {
        opb_store(y, y_kind, i, opb_binary_op(op, opb_load(a, a_kind, i), opb_load(b, b_kind, i)));
    }
}

void opb_scale(GEOM, const void* x, void* y, long long n, int x_kind, int y_kind, float factor) {
    UNUSED_GEOM;
    for (long long i = 0; i < n; ++i) opb_store(y, y_kind, i, opb_mul(opb_load(x, x_kind, i), factor));
}

void opb_cvt(GEOM, const void* x, void* y, long long n, int x_kind, int y_kind) {
    UNUSED_GEOM;
    for (long long i = 0; i < n; ++i) opb_cvt_elem(x, x_kind, y, y_kind, i);
}

void opb_quant(GEOM, const void* x, const float* scale, unsigned char* y, long long n, int x_kind, int H, int G,
               int group) {
    UNUSED_GEOM;
    for (long long i = 0; i < n; ++i) {
        y[i] = opb_fp8_round(opb_div(opb_load(x, x_kind, i), scale[(i / H) * G + (int)(i % H) / group]));
    }
}

void opb_act_quant(GEOM, const void* x, unsigned char* y, float* scale, long long groups, int x_kind, int H, int G,
                   int group) {
    UNUSED_GEOM;
    for (long long t = 0; t < groups; ++t) opb_act_quant_group(x, x_kind, y, scale, t, H, G, group);
}

void opb_gemm_fp8(GEOM, const void* a, const unsigned char* b, const float* sa, const float* sb, void* c,
                  long long sa0, long long sa1, long long sam, long long sak, long long sb0, long long sb1,
                  long long sbk, long long sbn, long long ssa0, long long ssa1, long long ssam, long long ssaj,
                  long long ssb0, long long ssb1, long long ssbj, long long ssbn, long long sc0, long long sc1,
                  long long scm, long long scn, int M, int N, int K, int B1, int a_kind, int c_kind, int block_k,
                  int block_n) {
    (void)gy, (void)by, (void)bz;
    const long long covered = (long long)gx * bx;  // one thread per output
    for (int z = 0; z < gz; ++z) {
        const int z0 = z / B1, z1 = z % B1;
        for (long long t = 0; t < (long long)M * N && t < covered; ++t) {
            const int m = (int)(t / N), n = (int)(t % N);
            float acc = 0.0f;
            int j = 0;
            for (int k0 = 0; k0 < K; k0 += block_k, ++j) {
                const int k1 = K - k0 < block_k ? K : k0 + block_k;
                float p = 0.0f;
                for (int k = k0; k < k1; ++k) {
                    const float av = opb_load(a, a_kind, z0 * sa0 + z1 * sa1 + m * sam + k * sak);
                    p = opb_add(p, opb_mul(av, opb_fp8_widen(b[z0 * sb0 + z1 * sb1 + k * sbk + n * sbn])));
                }
                const float s = opb_mul(sa[z0 * ssa0 + z1 * ssa1 + m * ssam + j * ssaj],
                                        sb[z0 * ssb0 + z1 * ssb1 + j * ssbj + (n / block_n) * ssbn]);
                acc = opb_add(acc, opb_mul(s, p));
            }
            opb_store(c, c_kind, z0 * sc0 + z1 * sc1 + m * scm + n * scn, acc);
        }
    }
}

static void gemm_host(const unsigned short* a, const unsigned short* b, void* c, long long sa0, long long sa1,
                      long long sam, long long sak, long long sb0, long long sb1, long long sbk, long long sbn,
                      long long sc0, long long sc1, long long scm, long long scn, int M, int N, int K, int B1,
                      int c_kind, int accumulate, int batches, int m_cover, int n_cover) {
    for (int z = 0; z < batches; ++z) {
        const int z0 = z / B1, z1 = z % B1;
        for (int m = 0; m < M && m < m_cover; ++m) {
            for (int n = 0; n < N && n < n_cover; ++n) {
                const long long ci = z0 * sc0 + z1 * sc1 + m * scm + n * scn;
                float acc = accumulate ? ((const float*)c)[ci] : 0.0f;
                for (int k = 0; k < K; ++k) {
                    const float av = opb_bf16_widen(a[z0 * sa0 + z1 * sa1 + m * sam + k * sak]);
                    const float bv = opb_bf16_widen(b[z0 * sb0 + z1 * sb1 + k * sbk + n * sbn]);
                    acc = opb_add(acc, opb_mul(av, bv));
                }
                opb_store(c, c_kind, ci, acc);
            }
        }
    }
}

void opb_gemm(GEOM, const unsigned short* a, const unsigned short* b, void* c, long long sa0, long long sa1,
              long long sam, long long sak, long long sb0, long long sb1, long long sbk, long long sbn, long long sc0,
              long long sc1, long long scm, long long scn, int M, int N, int K, int B1, int c_kind, int accumulate) {
    (void)bx, (void)by, (void)bz;
    gemm_host(a, b, c, sa0, sa1, sam, sak, sb0, sb1, sbk, sbn, sc0, sc1, scm, scn, M, N, K, B1, c_kind, accumulate,
              gz, gy * 64, gx * 64);
}

void opb_gemv(GEOM, const unsigned short* a, const unsigned short* b, void* c, long long sa0, long long sa1,
              long long sam, long long sak, long long sb0, long long sb1, long long sbk, long long sbn, long long sc0,
              long long sc1, long long scm, long long scn, int M, int N, int K, int B1, int c_kind, int accumulate) {
    (void)gy, (void)by, (void)bz;
    gemm_host(a, b, c, sa0, sa1, sam, sak, sb0, sb1, sbk, sbn, sc0, sc1, scm, scn, M, N, K, B1, c_kind, accumulate,
              gz, 8, gx * bx);
}

static bool host_masked(int c, long long q, int causal, int span, int chunked, int sink_col) {
    if (c == sink_col || !causal) return false;
    if (c > q) return true;
    if (span > 0) return chunked ? (c / span) != (q / span) : (long long)c <= q - span;
    return false;
}

void opb_softmax(GEOM, const void* x, void* y, float* work, long long rows, int x_kind, int y_kind, int R, int C,
                 float scale, int causal, int qpos, int span, int chunked, int sink) {
    UNUSED_GEOM;
    const float neg_inf = opb_f(OPB_NEG_INF);
    for (long long row = 0; row < rows; ++row) {
        const long long base = row * C;
        const long long q = (long long)qpos + (int)(row % R);
        const int sink_col = sink ? C - 1 : -1;
        float bv = neg_inf;
        int bi = 0x7FFFFFFF;
        for (int c = 0; c < C; ++c) {
            const float v = opb_load(x, x_kind, base + c);
            const float s = host_masked(c, q, causal, span, chunked, sink_col) ? neg_inf
                            : c == sink_col ? v : opb_mul(v, scale);
            if (opb_max_before(s, c, bv, bi)) {
                bv = s;
                bi = c;
            }
        }
        for (int c = 0; c < C; ++c) {
            const float v = opb_load(x, x_kind, base + c);
            const float s = c == sink_col ? v : opb_mul(v, scale);
            work[base + c] = host_masked(c, q, causal, span, chunked, sink_col) ? 0.0f : opb_exp(opb_sub(s, bv));
        }
        float z = 0.0f;
        for (int c = 0; c < C; ++c) z = opb_add(z, work[base + c]);
        for (int c = 0; c < C; ++c) {
            opb_store(y, y_kind, base + c,
                      host_masked(c, q, causal, span, chunked, sink_col) ? 0.0f : opb_div(work[base + c], z));
        }
    }
}

void opb_rmsnorm(GEOM, const void* x, const void* w, void* y, long long rows, int x_kind, int w_kind, int y_kind,
                 int H, float eps) {
    UNUSED_GEOM;
    for (long long row = 0; row < rows; ++row) {
        const long long base = row * H;
        float ss = 0.0f;
        for (int j = 0; j < H; ++j) {
            const float v = opb_load(x, x_kind, base + j);
            ss = opb_add(ss, opb_mul(v, v));
        }
        const float r = opb_rsqrt(opb_add(opb_div(ss, opb_i2f(H)), eps));
        for (int j = 0; j < H; ++j) {
            opb_store(y, y_kind, base + j, opb_mul(opb_mul(opb_load(x, x_kind, base + j), r), opb_load(w, w_kind, j)));
        }
    }
}

void opb_layernorm(GEOM, const void* x, const void* w, const void* b, void* y, long long rows, int x_kind,
                   int w_kind, int b_kind, int y_kind, int H, float eps) {
    UNUSED_GEOM;
    for (long long row = 0; row < rows; ++row) {
        const long long base = row * H;
        const float n = opb_i2f(H);
        float s = 0.0f;
        for (int j = 0; j < H; ++j) s = opb_add(s, opb_load(x, x_kind, base + j));
        const float mean = opb_div(s, n);
        float ss = 0.0f;
        for (int j = 0; j < H; ++j) {
            const float c = opb_sub(opb_load(x, x_kind, base + j), mean);
            ss = opb_add(ss, opb_mul(c, c));
        }
        const float r = opb_rsqrt(opb_add(opb_div(ss, n), eps));
        for (int j = 0; j < H; ++j) {
            const float c = opb_sub(opb_load(x, x_kind, base + j), mean);
            const float v = opb_mul(opb_mul(c, r), opb_load(w, w_kind, j));
            opb_store(y, y_kind, base + j, opb_add(v, opb_load(b, b_kind, j)));
        }
    }
}

void opb_reduce(GEOM, const void* x, void* y, long long rows, int x_kind, int y_kind, int C, int op) {
    UNUSED_GEOM;
    for (long long row = 0; row < rows; ++row) opb_reduce_row(x, x_kind, y, y_kind, row, C, op);
}

void opb_clamp_kernel(GEOM, const void* x, void* y, long long n, int x_kind, int y_kind, float lo, float hi,
                      int lower) {
    UNUSED_GEOM;
    for (long long i = 0; i < n; ++i) opb_store(y, y_kind, i, opb_clamp(opb_load(x, x_kind, i), lo, hi, lower));
}

void opb_topk_grouped(GEOM, const void* x, const void* bias, void* vals, int* idx, long long rows, int x_kind,
                      int b_kind, int v_kind, int E, int k, int groups, int keep) {
    UNUSED_GEOM;
    for (long long row = 0; row < rows; ++row) {
        opb_topk_grouped_row(x, x_kind, bias, b_kind, vals, v_kind, idx, row, E, k, groups, keep);
    }
}

void opb_topk(GEOM, const void* x, void* vals, int* idx, long long rows, int x_kind, int v_kind, int E, int k) {
    UNUSED_GEOM;
    for (long long row = 0; row < rows; ++row) opb_topk_row(x, x_kind, vals, v_kind, idx, row, E, k);
}

void opb_rope(GEOM, const void* x, const int* pos, const float* inv_freq, void* y, long long n0, int x_kind,
              int y_kind, int T, int D, float mscale) {
    UNUSED_GEOM;
    for (long long e = 0; e < n0 * T * (D / 2); ++e) {
        opb_rope_pair(x, x_kind, pos, inv_freq, y, y_kind, e, T, D, mscale);
    }
}

void opb_gather(GEOM, const void* src, const int* idx, void* dst, long long total, int H, int elem_bytes) {
    UNUSED_GEOM;
    for (long long e = 0; e < total; ++e) {
        const long long from = (long long)idx[e / H] * H + e % H;
        if (elem_bytes == 2) {
            ((unsigned short*)dst)[e] = ((const unsigned short*)src)[from];
        } else {
            ((unsigned int*)dst)[e] = ((const unsigned int*)src)[from];
        }
    }
}

void opb_scatter(GEOM, const void* src, const int* idx, void* dst, int T, int H, int elem_bytes) {
    UNUSED_GEOM;
    for (int j = 0; j < H; ++j) {
        for (int i = 0; i < T; ++i) {
            const long long to = (long long)idx[i] * H + j, from = (long long)i * H + j;
            if (elem_bytes == 2) {
                ((unsigned short*)dst)[to] = ((const unsigned short*)src)[from];
            } else {
                ((unsigned int*)dst)[to] = ((const unsigned int*)src)[from];
            }
        }
    }
}

void opb_scatter_add(GEOM, const void* src, const int* idx, const void* w, float* acc, int T, int H, int src_kind,
                     int w_kind) {
    UNUSED_GEOM;
    for (int j = 0; j < H; ++j) {
        for (int i = 0; i < T; ++i) {
            const long long to = (long long)idx[i] * H + j;
            const float p = opb_mul(opb_load(w, w_kind, i), opb_load(src, src_kind, (long long)i * H + j));
            acc[to] = opb_canonical(opb_add(acc[to], p));
        }
    }
}

void opb_copy4(GEOM, const void* src, void* dst, long long total, long long s0, long long s1, long long s2,
               long long s3, long long t0, long long t1, long long t2, long long t3, int d1, int d2, int d3,
               int elem_bytes) {
    UNUSED_GEOM;
    for (long long e = 0; e < total; ++e) {
        const long long i3 = e % d3, i2 = (e / d3) % d2, i1 = (e / d3 / d2) % d1, i0 = e / d3 / d2 / d1;
        const long long from = i0 * s0 + i1 * s1 + i2 * s2 + i3 * s3;
        const long long to = i0 * t0 + i1 * t1 + i2 * t2 + i3 * t3;
        if (elem_bytes == 2) {
            ((unsigned short*)dst)[to] = ((const unsigned short*)src)[from];
        } else {
            ((unsigned int*)dst)[to] = ((const unsigned int*)src)[from];
        }
    }
}

void opb_spin(GEOM, long long cycles) {
    UNUSED_GEOM;
    (void)cycles;
}

void opb_flush(GEOM, unsigned int* buf, long long n, unsigned int value) {
    UNUSED_GEOM;
    for (long long i = 0; i < n; ++i) buf[i] = value;
}

void host_sincos(const float* a, float* s, float* c, long long n) {
    for (long long i = 0; i < n; ++i) opb_sincos(a[i], &s[i], &c[i]);
}

}  // extern "C"
