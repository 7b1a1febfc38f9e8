// opbsim ISA constants, generated from opbsim/isa/spec.py (opbsim isa --format verilog).
`ifndef OPBSIM_ISA_SVH
`define OPBSIM_ISA_SVH
localparam int OPBSIM_WORD_BITS = 128;
localparam logic [7:0] OP_COPY = 8'h01;
localparam logic [7:0] OP_ALLREDUCE = 8'h08;
localparam logic [7:0] OP_ALLGATHER = 8'h0a;
localparam logic [7:0] OP_ALLTOALL = 8'h09;
localparam logic [7:0] OP_GEMM = 8'h10;
localparam logic [7:0] OP_GEMM_ACC = 8'h11;
localparam logic [7:0] OP_GEMM_FP8 = 8'h12;
localparam logic [7:0] OP_ADD = 8'h20;
localparam logic [7:0] OP_SUB = 8'h21;
localparam logic [7:0] OP_MUL = 8'h22;
localparam logic [7:0] OP_DIV = 8'h23;
localparam logic [7:0] OP_MAX = 8'h24;
localparam logic [7:0] OP_SUM = 8'h25;
localparam logic [7:0] OP_EXP = 8'h26;
localparam logic [7:0] OP_RSQRT = 8'h27;
localparam logic [7:0] OP_SILU = 8'h28;
localparam logic [7:0] OP_RELU = 8'h2c;
localparam logic [7:0] OP_GELU = 8'h2d;
localparam logic [7:0] OP_ROPE = 8'h29;
localparam logic [7:0] OP_SCALE = 8'h2a;
localparam logic [7:0] OP_CVT = 8'h2b;
localparam logic [7:0] OP_QUANT = 8'h2e;
localparam logic [7:0] OP_SOFTMAX = 8'h30;
localparam logic [7:0] OP_RMSNORM = 8'h31;
localparam logic [7:0] OP_LAYERNORM = 8'h36;
localparam logic [7:0] OP_TOPK = 8'h32;
localparam logic [7:0] OP_GATHER = 8'h33;
localparam logic [7:0] OP_SCATTER = 8'h35;
localparam logic [7:0] OP_SCATTER_ADD = 8'h34;
localparam logic [7:0] OP_LAUNCH = 8'h40;
localparam logic [7:0] OP_SIGNAL = 8'h50;
localparam logic [7:0] OP_WAIT = 8'h51;
localparam logic [7:0] OP_HALT = 8'h7f;
localparam logic [3:0] UNIT_CTRL = 4'd0;
localparam logic [3:0] UNIT_XPU = 4'd1;
localparam logic [3:0] UNIT_PIM = 4'd2;
localparam logic [3:0] UNIT_PCU = 4'd3;
localparam logic [3:0] UNIT_PMU = 4'd4;
localparam logic [3:0] UNIT_DMA = 4'd5;
localparam logic [7:0] DTYPE_BF16 = 8'd0;
localparam logic [7:0] DTYPE_FP32 = 8'd1;
localparam logic [7:0] DTYPE_I32 = 8'd2;
localparam logic [7:0] DTYPE_FP8_E4M3 = 8'd3;
`endif
