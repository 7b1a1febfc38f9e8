/* verilator lint_off UNUSEDPARAM */  // the include declares every opcode; this unit uses two
`include "opbsim_isa.svh"
/* verilator lint_on UNUSEDPARAM */

// pim_gemv: the Logic-PIM GEMM datapath. LANES output-stationary MAC lanes share one broadcast
// activation element per cycle and each take their own weight from a wide weight stream.
//
// One pass computes LANES outputs of a GEMV tile, y[n] for n < LANES:
//   acc[n] = init[n];  for k = 0..K-1 in order: acc[n] = fp32(acc[n] + fp32(x[k] * W[n][k]))
//   init[n] = +0 for OP_GEMM, cmd_acc[n] for OP_GEMM_ACC (the ISA's gemm / gemm_acc)
// which is opbsim.isa.numerics.gemm bit for bit (fp32_pkg: round to nearest even, subnormals kept,
// NaN results 32'h7FC0_0000). K is not configured: w_last marks a pass's last k.
//
// Channels (valid/ready; a beat moves when both are high at a rising edge):
//   cmd  one per pass, taken together with the pass's first k beat: cmd_op, cmd_acc (fp32 x LANES)
//   act  x[k], bf16, broadcast to every lane
//   w    W[n][k] for lane n in w_data[16n +: 16]; w_last on the pass's last k beat
//   out  the LANES fp32 results of a pass, lane n in out_data[32n +: 32]
// act and w (and cmd on a first beat) are joined: all move in the same cycle. Each ready depends
// on the other channels' valids, never a valid on a ready.
//
// Timing: one k per cycle per lane through three registers: operands, fp32 products, then the
// accumulators and the output register. A pass's result is valid two edges after the edge that
// took its last k beat and can leave at the third, so P back-to-back passes of K beats take
// P * K + 3 cycles from the first beat taken to the last result taken (LATENCY = 3). Passes
// follow back to back; the pipeline stalls only while a finished result waits on out_ready.
// rst_n is synchronous, active low.
module pim_gemv #(
    parameter int LANES = 8
) (
    input  logic                  clk,
    input  logic                  rst_n,
    input  logic                  cmd_valid,
    output logic                  cmd_ready,
    input  logic [           7:0] cmd_op,
    input  logic [32*LANES-1:0] cmd_acc,
    input  logic                  act_valid,
    output logic                  act_ready,
    input  logic [          15:0] act_data,
    input  logic                  w_valid,
    output logic                  w_ready,
    input  logic [16*LANES-1:0] w_data,
    input  logic                  w_last,
    output logic                  out_valid,
    input  logic                  out_ready,
    output logic [32*LANES-1:0] out_data
);
  import fp32_pkg::*;

  initial begin
    if (LANES < 1) $error("pim_gemv: LANES must be >= 1, got %0d", LANES);
  end

  // ---- input join -----------------------------------------------------------------------------
  logic first;  // the next k beat starts a pass
  logic advance;  // the pipeline moves this cycle
  logic cmd_ok;
  logic fire;

  assign cmd_ok    = !first || cmd_valid;
  assign fire      = advance && act_valid && w_valid && cmd_ok;
  assign act_ready = advance && w_valid && cmd_ok;
  assign w_ready   = advance && act_valid && cmd_ok;
  assign cmd_ready = advance && first && act_valid && w_valid;

  // ---- stage 1: registered operands -----------------------------------------------------------
  logic                s1_valid, s1_first, s1_last;
  logic [        15:0] s1_x;
  logic [16*LANES-1:0] s1_w;
  logic [32*LANES-1:0] s1_init;

  // ---- stage 2: fp32 products -----------------------------------------------------------------
  logic                s2_valid, s2_first, s2_last;
  logic [32*LANES-1:0] s2_prod;
  logic [32*LANES-1:0] s2_init;

  // ---- accumulators ---------------------------------------------------------------------------
  logic [32*LANES-1:0] acc;
  logic [32*LANES-1:0] prod;
  logic [32*LANES-1:0] sum;

  always_comb begin
    for (int n = 0; n < LANES; n++) begin
      prod[32*n+:32] = mul_bf16(s1_x, s1_w[16*n+:16]);
      sum[32*n+:32]  = add(s2_first ? s2_init[32*n+:32] : acc[32*n+:32], s2_prod[32*n+:32]);
    end
  end

  // A finished pass needs the output register; it is busy until out_ready takes its result.
  assign advance = !(s2_valid && s2_last && out_valid && !out_ready);

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      first     <= 1'b1;
      s1_valid  <= 1'b0;
      s2_valid  <= 1'b0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (advance) begin
        s1_valid <= fire;
        if (fire) begin
          first    <= w_last;
          s1_first <= first;
          s1_last  <= w_last;
          s1_x     <= act_data;
          s1_w     <= w_data;
          if (first) s1_init <= (cmd_op == OP_GEMM_ACC) ? cmd_acc : '0;
        end
        s2_valid <= s1_valid;
        if (s1_valid) begin
          s2_first <= s1_first;
          s2_last  <= s1_last;
          s2_prod  <= prod;
          s2_init  <= s1_init;
        end
        if (s2_valid) begin
          acc <= sum;
          if (s2_last) begin
            out_data  <= sum;
            out_valid <= 1'b1;
          end
        end
      end
    end
  end

  // A pass starts only with a GEMM command.
  always_ff @(posedge clk) begin
    if (rst_n && fire && first)
      assert (cmd_op == OP_GEMM || cmd_op == OP_GEMM_ACC)
      else $error("pim_gemv: command opcode 8'h%02x is neither gemm nor gemm_acc", cmd_op);
  end

endmodule
