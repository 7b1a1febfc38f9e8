// mac_bf16: one multiply-accumulate step of the numerics contract, as a streaming unit.
//
//   out_acc = fp32( fp32(a * b) + acc )      a, b: bf16; acc, out_acc: fp32
//
// The product is rounded to fp32 first (exact except where it overflows or underflows) and then
// added, round to nearest even: multiply, then add, never fused. Subnormals are kept, infinities
// follow IEEE-754, every NaN result is 32'h7FC0_0000 (fp32_pkg).
//
// Handshakes: a beat moves when valid and ready are both high at a rising clock edge. Results
// leave in input order. STAGES = 2 registers the product (latency 2), STAGES = 1 multiplies and
// adds in one cycle (latency 1); either accepts one beat per cycle when out_ready stays high.
// rst_n is synchronous, active low.
module mac_bf16 #(
    parameter int STAGES = 2
) (
    input  logic        clk,
    input  logic        rst_n,
    input  logic        in_valid,
    output logic        in_ready,
    input  logic [15:0] in_a,
    input  logic [15:0] in_b,
    input  logic [31:0] in_acc,
    output logic        out_valid,
    input  logic        out_ready,
    output logic [31:0] out_acc
);
  import fp32_pkg::*;

  initial begin
    if (STAGES != 1 && STAGES != 2) $error("mac_bf16: STAGES must be 1 or 2, got %0d", STAGES);
  end

  logic out_free;
  assign out_free = !out_valid || out_ready;

  if (STAGES == 2) begin : g_two
    logic        p_valid;
    logic [31:0] p_prod, p_acc;
    logic        p_free;

    assign p_free   = !p_valid || out_free;
    assign in_ready = p_free;

    always_ff @(posedge clk) begin
      if (!rst_n) begin
        p_valid   <= 1'b0;
        out_valid <= 1'b0;
      end else begin
        if (out_free) begin
          out_valid <= p_valid;
          if (p_valid) out_acc <= add(p_prod, p_acc);
        end
        if (p_free) begin
          p_valid <= in_valid;
          if (in_valid) begin
            p_prod <= mul_bf16(in_a, in_b);
            p_acc  <= in_acc;
          end
        end
      end
    end
  end else begin : g_one
    assign in_ready = out_free;

    always_ff @(posedge clk) begin
      if (!rst_n) begin
        out_valid <= 1'b0;
      end else if (out_free) begin
        out_valid <= in_valid;
        if (in_valid) out_acc <= add(mul_bf16(in_a, in_b), in_acc);
      end
    end
  end

endmodule
