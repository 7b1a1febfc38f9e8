// MoE dispatch and combine (numerics.gather, scatter, scatter_add) and strided copies.
// gather, scatter and copies move bits unchanged (elem_bytes 2 or 4, NaN payloads included);
// scatter_add adds in fp32. Rows are [rows, H] contiguous; indices are checked by the caller.
#include "numerics.cuh"

// dst[i, j] = src[idx[i], j] for i < T, j < H: one thread per element.
extern "C" __global__ void opb_gather(const void* src, const int* idx, void* dst, long long total, int H,
                                      int elem_bytes) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
        const long long from = (long long)idx[e / H] * H + e % H;
        if (elem_bytes == 2) {
            ((unsigned short*)dst)[e] = ((const unsigned short*)src)[from];
        } else {
            ((unsigned int*)dst)[e] = ((const unsigned int*)src)[from];
        }
    }
}

// dst[idx[i], j] = src[i, j] for i = 0..T-1 in order: one thread per column j walks the rows,
// so when a row is named twice the later i wins. Rows not named are not touched.
extern "C" __global__ void opb_scatter(const void* src, const int* idx, void* dst, int T, int H, int elem_bytes) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < H; j += gridDim.x * blockDim.x) {
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

// acc[idx[i], j] = acc[idx[i], j] + (w[i] * src[i, j]) for i = 0..T-1 in order (fp32 product,
// then fp32 add): one thread per column, so a repeated row accumulates in index order.
extern "C" __global__ void opb_scatter_add(const void* src, const int* idx, const void* w, float* acc, int T,
                                           int H, int src_kind, int w_kind) {
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < H; j += gridDim.x * blockDim.x) {
        for (int i = 0; i < T; ++i) {
            const long long to = (long long)idx[i] * H + j;
            const float p = opb_mul(opb_load(w, w_kind, i), opb_load(src, src_kind, (long long)i * H + j));
            acc[to] = opb_canonical(opb_add(acc[to], p));
        }
    }
}

// dst view = src view, both 4-D [d0, d1, d2, d3] with element strides: bits moved.
extern "C" __global__ void opb_copy4(const void* src, void* dst, long long total,
                                     long long s0, long long s1, long long s2, long long s3,
                                     long long t0, long long t1, long long t2, long long t3,
                                     int d1, int d2, int d3, int elem_bytes) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < total;
         e += (long long)gridDim.x * blockDim.x) {
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
