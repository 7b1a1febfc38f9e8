// Elementwise instructions: exp, exp_scaled, rsqrt, silu, relu, gelu, add, sub, mul, div,
// scale, cvt (numerics.py) and quant (numerics_fp8.py), over n contiguous elements in a grid-stride loop.
// Operands are bf16 (uint16 bit patterns), fp32, i32 or e4m3 as their *_kind says; every result is
// rounded once into the destination kind (opb_store). Op codes: OPB_OP_* in numerics.cuh.
#include "numerics.cuh"

#define OPB_GRID_STRIDE(i, n)                                                       \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n);   \
         i += (long long)gridDim.x * blockDim.x)

// y[i] = op(x[i]); param is s of exp_scaled (0..64), unused otherwise.
extern "C" __global__ void opb_unary(const void* x, void* y, long long n, int x_kind, int y_kind, int op,
                                     int param) {
    OPB_GRID_STRIDE(i, n) { opb_store(y, y_kind, i, opb_unary_op(op, opb_load(x, x_kind, i), param)); }
}

// y[i] = a[i] op b[i], one correctly rounded fp32 operation.
extern "C" __global__ void opb_binary(const void* a, const void* b, void* y, long long n, int a_kind, int b_kind,
                                      int y_kind, int op) {
    OPB_GRID_STRIDE(i, n) {
        opb_store(y, y_kind, i, opb_binary_op(op, opb_load(a, a_kind, i), opb_load(b, b_kind, i)));
    }
}

// y[i] = clamp(x[i], lo, hi, lower) (opb_clamp).
extern "C" __global__ void opb_clamp_kernel(const void* x, void* y, long long n, int x_kind, int y_kind, float lo,
                                            float hi, int lower) {
    OPB_GRID_STRIDE(i, n) { opb_store(y, y_kind, i, opb_clamp(opb_load(x, x_kind, i), lo, hi, lower)); }
}

// y[i] = x[i] * factor (factor already rounded to fp32 by the caller).
extern "C" __global__ void opb_scale(const void* x, void* y, long long n, int x_kind, int y_kind, float factor) {
    OPB_GRID_STRIDE(i, n) { opb_store(y, y_kind, i, opb_mul(opb_load(x, x_kind, i), factor)); }
}

// numerics.cvt between any two kinds (opb_cvt_elem).
extern "C" __global__ void opb_cvt(const void* x, void* y, long long n, int x_kind, int y_kind) {
    OPB_GRID_STRIDE(i, n) { opb_cvt_elem(x, x_kind, y, y_kind, i); }
}

// act_quant (numerics_fp8.act_quant): one thread per group of x's rows of H (opb_act_quant_group).
extern "C" __global__ void opb_act_quant(const void* x, unsigned char* y, float* scale, long long groups, int x_kind,
                                         int H, int G, int group) {
    OPB_GRID_STRIDE(t, groups) { opb_act_quant_group(x, x_kind, y, scale, t, H, G, group); }
}

// quant (numerics_fp8.quant): y[i] = e4m3(x[i] / scale[row, col / group]) over n contiguous elements of
// rows of H, scale contiguous [rows, G]; the fp32 division correctly rounded, the encoding opb_fp8_round.
extern "C" __global__ void opb_quant(const void* x, const float* scale, unsigned char* y, long long n, int x_kind,
                                     int H, int G, int group) {
    OPB_GRID_STRIDE(i, n) {
        const long long row = i / H;
        const int col = (int)(i % H);
        y[i] = opb_fp8_round(opb_div(opb_load(x, x_kind, i), scale[row * G + col / group]));
    }
}
