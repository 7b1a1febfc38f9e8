// Row instructions over the last axis of contiguous [rows, C] operands (numerics.py):
// softmax (scale, causal, window and chunk masks with qpos, sink column), rmsnorm, layernorm, max, sum, topk, and rope over
// [N0, T, D]. Every sum is one thread's sequential chain from +0 in index order (the
// definition's seq_sum), so only the elementwise steps run in parallel.
#include "numerics.cuh"

#define ROW_THREADS 256

// softmax of each row (softmax and softmax_masked); row r of its [R, C] matrix is the query at key
// column q = qpos + r. With causal, column c is masked when c > q, and with span W > 0 also when
// c <= q - W (sliding window) or, chunked, when c / W != q / W (chunked attention). With sink the last
// column is a logit taken unscaled and never masked; the sum adds it last (index order).
// work: fp32 scratch of rows * C values (the unnormalised e). Block ROW_THREADS; grid <= rows.
__device__ __forceinline__ bool opb_masked(int c, long long q, int causal, int span, int chunked, int sink_col) {
    if (c == sink_col) return false;
    if (!causal) return false;
    if (c > q) return true;
    if (span > 0) return chunked ? (c / span) != (q / span) : (long long)c <= q - span;
    return false;
}

extern "C" __global__ void __launch_bounds__(ROW_THREADS)
opb_softmax(const void* x, void* y, float* work, long long rows, int x_kind, int y_kind, int R, int C,
            float scale, int causal, int qpos, int span, int chunked, int sink) {
    __shared__ float best_v[ROW_THREADS];
    __shared__ int best_i[ROW_THREADS];
    __shared__ float total;
    const int tid = threadIdx.x;
    const float neg_inf = opb_f(OPB_NEG_INF);
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long base = row * C;
        const long long q = (long long)qpos + (int)(row % R);
        const int sink_col = sink ? C - 1 : -1;
        float bv = neg_inf;
        int bi = 0x7FFFFFFF;  // loses to every real entry
        for (int c = tid; c < C; c += blockDim.x) {
            const float v = opb_load(x, x_kind, base + c);
            const float s = opb_masked(c, q, causal, span, chunked, sink_col) ? neg_inf
                            : c == sink_col ? v : opb_mul(v, scale);
            if (opb_max_before(s, c, bv, bi)) {
                bv = s;
                bi = c;
            }
        }
        best_v[tid] = bv;
        best_i[tid] = bi;
        __syncthreads();
        for (int w = blockDim.x / 2; w > 0; w >>= 1) {
            if (tid < w && opb_max_before(best_v[tid + w], best_i[tid + w], best_v[tid], best_i[tid])) {
                best_v[tid] = best_v[tid + w];
                best_i[tid] = best_i[tid + w];
            }
            __syncthreads();
        }
        const float m = best_v[0];
        for (int c = tid; c < C; c += blockDim.x) {
            const bool masked = opb_masked(c, q, causal, span, chunked, sink_col);
            const float v = opb_load(x, x_kind, base + c);
            const float s = c == sink_col ? v : opb_mul(v, scale);
            work[base + c] = masked ? 0.0f : opb_exp(opb_sub(s, m));
        }
        __syncthreads();
        if (tid == 0) {
            float z = 0.0f;
            for (int c = 0; c < C; ++c) z = opb_add(z, work[base + c]);
            total = z;
        }
        __syncthreads();
        const float z = total;
        for (int c = tid; c < C; c += blockDim.x) {
            opb_store(y, y_kind, base + c,
                      opb_masked(c, q, causal, span, chunked, sink_col) ? 0.0f : opb_div(work[base + c], z));
        }
        __syncthreads();
    }
}

// rmsnorm: ss = sum(x * x); r = rsqrt((ss / H) + eps); y = (x * r) * w.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
opb_rmsnorm(const void* x, const void* w, void* y, long long rows, int x_kind, int w_kind, int y_kind, int H,
            float eps) {
    __shared__ float r_sh;
    const int tid = threadIdx.x;
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long base = row * H;
        if (tid == 0) {
            float ss = 0.0f;
            for (int j = 0; j < H; ++j) {
                const float v = opb_load(x, x_kind, base + j);
                ss = opb_add(ss, opb_mul(v, v));
            }
            r_sh = opb_rsqrt(opb_add(opb_div(ss, opb_i2f(H)), eps));
        }
        __syncthreads();
        const float r = r_sh;
        for (int j = tid; j < H; j += blockDim.x) {
            const float v = opb_mul(opb_load(x, x_kind, base + j), r);
            opb_store(y, y_kind, base + j, opb_mul(v, opb_load(w, w_kind, j)));
        }
        __syncthreads();
    }
}

// layernorm: mean = sum(x) / H; c = x - mean; r = rsqrt(sum(c * c) / H + eps);
// y = ((c * r) * w) + b.
extern "C" __global__ void __launch_bounds__(ROW_THREADS)
opb_layernorm(const void* x, const void* w, const void* b, void* y, long long rows, int x_kind, int w_kind,
              int b_kind, int y_kind, int H, float eps) {
    __shared__ float mean_sh, r_sh;
    const int tid = threadIdx.x;
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const long long base = row * H;
        if (tid == 0) {
            const float n = opb_i2f(H);
            float s = 0.0f;
            for (int j = 0; j < H; ++j) s = opb_add(s, opb_load(x, x_kind, base + j));
            const float mean = opb_div(s, n);
            float ss = 0.0f;
            for (int j = 0; j < H; ++j) {
                const float c = opb_sub(opb_load(x, x_kind, base + j), mean);
                ss = opb_add(ss, opb_mul(c, c));
            }
            mean_sh = mean;
            r_sh = opb_rsqrt(opb_add(opb_div(ss, n), eps));
        }
        __syncthreads();
        const float mean = mean_sh, r = r_sh;
        for (int j = tid; j < H; j += blockDim.x) {
            const float c = opb_sub(opb_load(x, x_kind, base + j), mean);
            const float v = opb_mul(opb_mul(c, r), opb_load(w, w_kind, j));
            opb_store(y, y_kind, base + j, opb_add(v, opb_load(b, b_kind, j)));
        }
        __syncthreads();
    }
}

// max (op 0) and sum (op 1) over the last axis, one thread per row (opb_reduce_row).
extern "C" __global__ void opb_reduce(const void* x, void* y, long long rows, int x_kind, int y_kind, int C,
                                      int op) {
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < rows;
         row += (long long)gridDim.x * blockDim.x) {
        opb_reduce_row(x, x_kind, y, y_kind, row, C, op);
    }
}

// topk of each row of [rows, E], one thread per row (opb_topk_row).
extern "C" __global__ void opb_topk(const void* x, void* vals, int* idx, long long rows, int x_kind, int v_kind,
                                    int E, int k) {
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < rows;
         row += (long long)gridDim.x * blockDim.x) {
        opb_topk_row(x, x_kind, vals, v_kind, idx, row, E, k);
    }
}

// group-limited topk of each row of [rows, E] with the choice bias [E], one thread per row
// (opb_topk_grouped_row).
extern "C" __global__ void opb_topk_grouped(const void* x, const void* bias, void* vals, int* idx, long long rows,
                                            int x_kind, int b_kind, int v_kind, int E, int k, int groups,
                                            int keep) {
    for (long long row = (long long)blockIdx.x * blockDim.x + threadIdx.x; row < rows;
         row += (long long)gridDim.x * blockDim.x) {
        opb_topk_grouped_row(x, x_kind, bias, b_kind, vals, v_kind, idx, row, E, k, groups, keep);
    }
}

// rope of x [N0, T, D] (contiguous) at positions pos [T] with the host's fp32 frequency table
// inv_freq [D / 2] and the cos/sin factor mscale: one thread per rotated pair (opb_rope_pair).
extern "C" __global__ void opb_rope(const void* x, const int* pos, const float* inv_freq, void* y, long long n0,
                                    int x_kind, int y_kind, int T, int D, float mscale) {
    const long long pairs = n0 * T * (D / 2);
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < pairs;
         e += (long long)gridDim.x * blockDim.x) {
        opb_rope_pair(x, x_kind, pos, inv_freq, y, y_kind, e, T, D, mscale);
    }
}
