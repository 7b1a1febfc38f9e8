// gemm_fp8 (numerics_fp8.gemm_fp8): [B0, B1, M, K] x [B0, B1, K, N] -> [B0, B1, M, N], a bf16 or e4m3
// (a_kind), b e4m3, fp32 scales sa [B0, B1, M, KB] and sb [B0, B1, KB, NB]. Each output is one thread's
// chain: per k block j, p = +0 then p = p + a[m, k] * b[k, n] for its k in order (__fmul_rn then
// __fadd_rn, never fused); s = sa[m, j] * sb[j, n / block_n]; acc = acc + s * p, blocks in order; the
// result is rounded once into c (c_kind). A reference for bits, not for speed: no shared-memory tiles.
// Strides are in elements (a transposed weight or KV cache and stride-0 scale views are read in place).
#include "numerics.cuh"

#define GEMM_FP8_THREADS 256

// One launch: grid (ceil(M * N / 256), 1, B0 * B1), block 256; thread t computes output (t / N, t % N).
extern "C" __global__ void __launch_bounds__(GEMM_FP8_THREADS)
opb_gemm_fp8(const void* a, const unsigned char* b, const float* sa, const float* sb, void* c,
             long long sa0, long long sa1, long long sam, long long sak,
             long long sb0, long long sb1, long long sbk, long long sbn,
             long long ssa0, long long ssa1, long long ssam, long long ssaj,
             long long ssb0, long long ssb1, long long ssbj, long long ssbn,
             long long sc0, long long sc1, long long scm, long long scn,
             int M, int N, int K, int B1, int a_kind, int c_kind, int block_k, int block_n) {
    const long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= (long long)M * N) return;
    const int z0 = blockIdx.z / B1, z1 = blockIdx.z % B1;
    const int m = (int)(t / N), n = (int)(t % N);
    const long long ao = z0 * sa0 + z1 * sa1 + m * sam, bo = z0 * sb0 + z1 * sb1 + n * sbn;
    const long long sao = z0 * ssa0 + z1 * ssa1 + m * ssam, sbo = z0 * ssb0 + z1 * ssb1 + (n / block_n) * ssbn;
    float acc = 0.0f;
    int j = 0;
    for (int k0 = 0; k0 < K; k0 += block_k, ++j) {
        const int k1 = K - k0 < block_k ? K : k0 + block_k;
        float p = 0.0f;
        for (int k = k0; k < k1; ++k) p = opb_add(p, opb_mul(opb_load(a, a_kind, ao + k * sak), opb_fp8_widen(b[bo + k * sbk])));
        const float s = opb_mul(sa[sao + j * ssaj], sb[sbo + j * ssbj]);
        acc = opb_add(acc, opb_mul(s, p));
    }
    opb_store(c, c_kind, z0 * sc0 + z1 * sc1 + m * scm + n * scn, acc);
}
