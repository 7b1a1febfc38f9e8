// gemm and gemm_acc (numerics.gemm): [B0, B1, M, K] x [B0, B1, K, N] -> [B0, B1, M, N], bf16
// operands, fp32 accumulation. Each output starts from +0 (or from its fp32 value in c when
// accumulate is set: gemm_acc) and adds the fp32-rounded product a[m, k] * b[k, n] for
// k = 0, 1, ..., K-1 in order: __fmul_rn then __fadd_rn, never fused, never split over k.
// Tiles of a and b pass through shared memory; only the loads are shared, every output's
// additions stay one sequential chain in one thread.
//
// Strides are in elements, any sign-free layout: a transposed weight (stride 1 along k) and
// a stride-0 batch axis (keys shared by the heads of a group) are read in place. The grid's
// z index runs over B0 * B1. c must not overlap a or b (the runner allocates it).
#include "numerics.cuh"

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
#define GEMM_THREADS 256  // 16 x 16 threads, 4 x 4 outputs each

// One launch: grid (ceil(N / 64), ceil(M / 64), B0 * B1), block 256.
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
opb_gemm(const unsigned short* a, const unsigned short* b, void* c,
         long long sa0, long long sa1, long long sam, long long sak,
         long long sb0, long long sb1, long long sbk, long long sbn,
         long long sc0, long long sc1, long long scm, long long scn,
         int M, int N, int K, int B1, int c_kind, int accumulate) {
    __shared__ float As[GEMM_BK][GEMM_BM + 1];
    __shared__ float Bs[GEMM_BK][GEMM_BN + 1];
    const int z0 = blockIdx.z / B1, z1 = blockIdx.z % B1;
    a += z0 * sa0 + z1 * sa1;
    b += z0 * sb0 + z1 * sb1;
    const long long coff = z0 * sc0 + z1 * sc1;
    const int m0 = blockIdx.y * GEMM_BM, n0 = blockIdx.x * GEMM_BN;
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const bool a_k_fast = sak == 1;                 // consecutive threads load consecutive k
    const bool b_n_fast = sbn == 1 || sbk != 1;     // ... or consecutive n

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            acc[i][j] = (accumulate && m < M && n < N) ? ((const float*)c)[coff + m * scm + n * scn] : 0.0f;
        }
    }

    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
#pragma unroll
        for (int r = 0; r < (GEMM_BM * GEMM_BK) / GEMM_THREADS; ++r) {
            const int e = tid + GEMM_THREADS * r;
            const int kk = a_k_fast ? e % GEMM_BK : e / GEMM_BM;
            const int mm = a_k_fast ? e / GEMM_BK : e % GEMM_BM;
            const int gm = m0 + mm, gk = k0 + kk;
            As[kk][mm] = (gm < M && gk < K) ? opb_bf16_widen(a[gm * sam + gk * sak]) : 0.0f;
        }
#pragma unroll
        for (int r = 0; r < (GEMM_BN * GEMM_BK) / GEMM_THREADS; ++r) {
            const int e = tid + GEMM_THREADS * r;
            const int kk = b_n_fast ? e / GEMM_BN : e % GEMM_BK;
            const int nn = b_n_fast ? e % GEMM_BN : e / GEMM_BK;
            const int gn = n0 + nn, gk = k0 + kk;
            Bs[kk][nn] = (gn < N && gk < K) ? opb_bf16_widen(b[gk * sbk + gn * sbn]) : 0.0f;
        }
        __syncthreads();
        const int kmax = K - k0 < GEMM_BK ? K - k0 : GEMM_BK;  // never add a padding term
        for (int kk = 0; kk < kmax; ++kk) {
            float av[4], bv[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) av[i] = As[kk][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; ++j) bv[j] = Bs[kk][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; ++i) {
#pragma unroll
                for (int j = 0; j < 4; ++j) acc[i][j] = opb_add(acc[i][j], opb_mul(av[i], bv[j]));
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
            if (m < M && n < N) opb_store(c, c_kind, coff + m * scm + n * scn, acc[i][j]);
        }
    }
}

#define GEMV_MAX_M 8
#define GEMV_BK 64
#define GEMV_MAX_TN 128

// The same arithmetic for M <= 8 rows (decode): each thread owns one column n and up to 8
// accumulators; a block of TN = blockDim.x (32, 64 or 128) columns streams b through shared
// memory. One launch: grid (ceil(N / TN), 1, B0 * B1), block TN.
extern "C" __global__ void __launch_bounds__(GEMV_MAX_TN)
opb_gemv(const unsigned short* a, const unsigned short* b, void* c,
         long long sa0, long long sa1, long long sam, long long sak,
         long long sb0, long long sb1, long long sbk, long long sbn,
         long long sc0, long long sc1, long long scm, long long scn,
         int M, int N, int K, int B1, int c_kind, int accumulate) {
    __shared__ float As[GEMV_MAX_M][GEMV_BK];
    __shared__ float Bs[GEMV_BK][GEMV_MAX_TN + 1];
    const int TN = blockDim.x;
    const int z0 = blockIdx.z / B1, z1 = blockIdx.z % B1;
    a += z0 * sa0 + z1 * sa1;
    b += z0 * sb0 + z1 * sb1;
    const long long coff = z0 * sc0 + z1 * sc1;
    const int tid = threadIdx.x, n = blockIdx.x * TN + tid;
    const bool b_n_fast = sbn == 1 || sbk != 1;

    float acc[GEMV_MAX_M];
#pragma unroll
    for (int m = 0; m < GEMV_MAX_M; ++m) {
        acc[m] = (accumulate && m < M && n < N) ? ((const float*)c)[coff + m * scm + n * scn] : 0.0f;
    }

    for (int k0 = 0; k0 < K; k0 += GEMV_BK) {
        for (int e = tid; e < GEMV_MAX_M * GEMV_BK; e += TN) {
            const int mm = e / GEMV_BK, kk = e % GEMV_BK, gk = k0 + kk;
            As[mm][kk] = (mm < M && gk < K) ? opb_bf16_widen(a[mm * sam + gk * sak]) : 0.0f;
        }
        for (int e = tid; e < GEMV_BK * TN; e += TN) {
            const int kk = b_n_fast ? e / TN : e % GEMV_BK;
            const int nn = b_n_fast ? e % TN : e / GEMV_BK;
            const int gn = blockIdx.x * TN + nn, gk = k0 + kk;
            Bs[kk][nn] = (gn < N && gk < K) ? opb_bf16_widen(b[gk * sbk + gn * sbn]) : 0.0f;
        }
        __syncthreads();
        const int kmax = K - k0 < GEMV_BK ? K - k0 : GEMV_BK;
        for (int kk = 0; kk < kmax; ++kk) {
            const float bv = Bs[kk][tid];
#pragma unroll
            for (int m = 0; m < GEMV_MAX_M; ++m) {
                if (m < M) acc[m] = opb_add(acc[m], opb_mul(As[m][kk], bv));
            }
        }
        __syncthreads();
    }

    if (n < N) {
#pragma unroll
        for (int m = 0; m < GEMV_MAX_M; ++m) {
            if (m < M) opb_store(c, c_kind, coff + m * scm + n * scn, acc[m]);
        }
    }
}
