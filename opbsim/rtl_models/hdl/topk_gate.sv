// topk_gate: the MoE router's top-k over the E logits of one token (the ISA's topk).
//
// Logits arrive one per beat in index order 0..E-1; after the E-th the unit offers the K largest,
// in descending order, with their indices. Order (opbsim.isa.numerics.topk): every NaN ranks
// above +inf, then the usual order of binary32; +0 and -0 are equal; equal values keep index
// order (the lower index first). Values are output as fp32 words unchanged except that a NaN is
// the canonical 32'h7FC0_0000 (what an fp32 store of the result holds).
//
// Datapath: a sorted list of K (value, index) registers; each logit is compared with all K
// entries at once and inserted behind those ranking at least as high (an insertion-sort shift
// register), so one logit is taken per cycle and a token takes E cycles. The list is the output
// register: the next token's first logit is taken in the cycle its result is.
//
//   in   in_logit (fp32)                                   valid/ready
//   out  out_vals[32j +: 32], out_idx[IW*j +: IW], j = 0..K-1, rank 0 first   valid/ready
// rst_n is synchronous, active low.
module topk_gate #(
    parameter int E = 8,
    parameter int K = 2,
    localparam int IW = (E > 1) ? $clog2(E) : 1
) (
    input  logic            clk,
    input  logic            rst_n,
    input  logic            in_valid,
    output logic            in_ready,
    input  logic [    31:0] in_logit,
    output logic            out_valid,
    input  logic            out_ready,
    output logic [32*K-1:0] out_vals,
    output logic [IW*K-1:0] out_idx
);
  import fp32_pkg::*;

  initial begin
    if (K < 1 || K > E) $error("topk_gate: need 1 <= K <= E, got K=%0d E=%0d", K, E);
  end

  logic [31:0] val[K];
  logic [IW-1:0] idx[K];
  logic [K-1:0] occupied;
  logic [IW-1:0] count;  // index of the next logit

  logic take;
  assign in_ready = !out_valid || out_ready;
  assign take     = in_valid && in_ready;

  // The list as the new logit sees it: empty at the start of a token.
  logic [K-1:0] live;
  logic [K-1:0] ahead;  // entries that stay in front of the new logit (a prefix of the list)
  logic [31:0] new_key;
  logic [31:0] new_val;
  logic [31:0] nxt_val[K];
  logic [IW-1:0] nxt_idx[K];

  always_comb begin
    live    = (count == '0) ? '0 : occupied;
    new_key = order_key(in_logit);
    new_val = is_nan(in_logit) ? QNAN : in_logit;
    for (int j = 0; j < K; j++) begin
      ahead[j] = live[j] && order_key(val[j]) >= new_key;
    end
    for (int j = 0; j < K; j++) begin
      if (ahead[j]) begin
        nxt_val[j] = val[j];
        nxt_idx[j] = idx[j];
      end else if (j == 0 || ahead[j-1]) begin
        nxt_val[j] = new_val;
        nxt_idx[j] = count;
      end else begin
        nxt_val[j] = val[j-1];
        nxt_idx[j] = idx[j-1];
      end
    end
  end

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      count     <= '0;
      occupied  <= '0;
      out_valid <= 1'b0;
    end else begin
      if (out_valid && out_ready) out_valid <= 1'b0;
      if (take) begin
        for (int j = 0; j < K; j++) begin
          val[j] <= nxt_val[j];
          idx[j] <= nxt_idx[j];
        end
        occupied <= (live << 1) | K'(1);
        if (count == IW'(E - 1)) begin
          count     <= '0;
          out_valid <= 1'b1;
        end else begin
          count <= count + 1'b1;
        end
      end
    end
  end

  always_comb begin
    for (int j = 0; j < K; j++) begin
      out_vals[32*j+:32] = val[j];
      out_idx[IW*j+:IW]  = idx[j];
    end
  end

endmodule
