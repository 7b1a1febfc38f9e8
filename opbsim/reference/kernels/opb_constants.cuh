// Generated from opbsim/reference/interface.py, isa/spec.py, isa/elementary.py and isa/numerics.py by
// opbsim/reference/constants_header.py (make docs). Do not edit by hand.
#ifndef OPBSIM_CONSTANTS_CUH
#define OPBSIM_CONSTANTS_CUH

#define OPB_BF16 0
#define OPB_FP32 1
#define OPB_I32 2
#define OPB_FP8 3

#define OPB_F32_NAN 0x7FC00000u
#define OPB_BF16_NAN 0x7FC0u
#define OPB_NEG_INF 0xFF800000u
#define OPB_NEG_ZERO 0x80000000u
// fp8 e4m3 (isa/fp8.py): NaN code; fp32 bits of the largest finite, smallest normal, smallest subnormal
#define OPB_FP8_NAN 0x7Fu
#define OPB_FP8_MAX 0x43E00000u
#define OPB_FP8_MIN_NORMAL 0x3C800000u
#define OPB_FP8_SUBNORMAL 0x3B000000u
// exp (elementary.py: Cody-Waite reduction by ln 2, Cephes expf polynomial)
#define OPB_EXP_LO 0xC2D00000u  // -104
#define OPB_EXP_HI 0x42B20000u  // 89
#define OPB_LOG2E 0x3FB8AA3Bu  // 1.44269502
#define OPB_LN2_HI 0x3F318000u  // 0.693359375
#define OPB_LN2_LO 0xB95E8083u  // -0.000212194442
#define OPB_EXP_P0 0x39506967u  // 0.000198756912
#define OPB_EXP_P1 0x3AB743CEu  // 0.00139819994
#define OPB_EXP_P2 0x3C088908u  // 0.00833345205
#define OPB_EXP_P3 0x3D2AA9C1u  // 0.0416657962
#define OPB_EXP_P4 0x3E2AAAAAu  // 0.166666657
#define OPB_EXP_P5 0x3F000000u  // 0.5
// sin/cos (reduction by pi/2 in four parts, Cephes sinf/cosf polynomials)
#define OPB_TWO_OVER_PI 0x3F22F983u  // 0.636619747
#define OPB_TWO_M12 0x39800000u  // 0.000244140625
#define OPB_TWO_P12 0x45800000u  // 4096
#define OPB_TWO_P62 0x5E800000u  // 4.61168602e+18
#define OPB_PIO2_0 0x3FC90000u  // 1.5703125
#define OPB_PIO2_1 0x39FDA000u  // 0.000483751297
#define OPB_PIO2_2 0x33A22000u  // 7.54953362e-08
#define OPB_PIO2_3 0x2C34611Au  // 2.56334407e-12
#define OPB_SIN_P0 0xB94CA1F9u  // -0.000195152956
#define OPB_SIN_P1 0x3C08839Eu  // 0.00833216123
#define OPB_SIN_P2 0xBE2AAAA3u  // -0.166666552
#define OPB_COS_P0 0x37CCF5CEu  // 2.44331568e-05
#define OPB_COS_P1 0xBAB6061Au  // -0.00138873165
#define OPB_COS_P2 0x3D2AAAA5u  // 0.0416666456
// silu / gelu (numerics._times_sigmoid, numerics.gelu)
#define OPB_TWO_M64 0x1F800000u  // 5.42101086e-20
#define OPB_GELU_C1 0x3FCC422Au  // 1.59576917
#define OPB_GELU_C2 0x3D922279u  // 0.0713548139

// unary op codes (interface.UNARY_OPS: the instructions' opcodes of isa/spec.py)
#define OPB_OP_EXP 38
#define OPB_OP_RSQRT 39
#define OPB_OP_SILU 40
#define OPB_OP_SIGMOID 46
#define OPB_OP_RELU 44
#define OPB_OP_GELU 45
#define OPB_OP_EXP_SCALED 256
// binary op codes (interface.BINARY_OPS: the instructions' opcodes of isa/spec.py)
#define OPB_OP_ADD 32
#define OPB_OP_SUB 33
#define OPB_OP_MUL 34
#define OPB_OP_DIV 35
// topk_grouped: the most groups its `groups` field can name (isa/spec.py)
#define OPB_MAX_GROUPS 255

#endif
