// exp_unit: e^x in binary32, pipelined, exactly the exp of opbsim/isa/elementary.py.
//
// Every step is one correctly rounded binary32 operation of fp32_pkg (no fused multiply-add):
//   1. c = min(max(x, -104), 89)                  t = c * LOG2E
//   2. n = rint(t)                                a = n * LN2_HI
//   3. r = c - a                                  a = n * LN2_LO
//   4. r = r - a                                  r2 = r * r, p = P0
//   5.. p = p * r + Pj, j = 1..EXP_HORNER_STEPS   (a multiply, then an add)
//   .. y = (p * r2) + r;  y = y + 1
//   .. h = floor(n / 2);  y = y * 2^h;  y = y * 2^(n - h)   (exact powers of two built from bits)
// A NaN input gives the canonical NaN 32'h7FC0_0000. The constants come from the generated
// exp_constants.svh (opbsim rtl generate), never typed in here.
//
// One stage per line above: 8 + EXP_HORNER_STEPS register stages (13), one input per cycle.
// Handshakes are valid/ready; the pipeline is elastic (a stage takes a new value whenever it is
// empty or its successor takes its value), so bubbles close up under back-pressure.
// rst_n is synchronous, active low.
module exp_unit (
    input  logic        clk,
    input  logic        rst_n,
    input  logic        in_valid,
    output logic        in_ready,
    input  logic [31:0] in_x,
    output logic        out_valid,
    input  logic        out_ready,
    output logic [31:0] out_y
);
  import fp32_pkg::*;
  `include "exp_constants.svh"

  localparam int H = EXP_HORNER_STEPS;
  localparam int STAGES = 8 + H;

  typedef struct packed {
    logic        nan;  // the input was a NaN
    logic [31:0] c;    // clamped input
    logic [31:0] n;    // rint(c * LOG2E), binary32
    logic [31:0] r;    // reduced argument
    logic [31:0] r2;   // r * r
    logic [31:0] a;    // a product on its way to a subtraction, then p, then y
  } state_t;

  state_t st_in;
  state_t st_q[1:STAGES];
  state_t st_d[1:STAGES];
  logic   v_q [1:STAGES];
  logic   take[1:STAGES];  // stage i loads st_d[i] at the next edge

  assign st_in = '{nan: is_nan(in_x), c: in_x, n: '0, r: '0, r2: '0, a: '0};

  // ---- one stage of the definition per register ------------------------------------------
  for (genvar i = 1; i <= STAGES; i++) begin : g_stage
    state_t prev;
    if (i == 1) begin : g_in
      assign prev = st_in;
    end else begin : g_prev
      assign prev = st_q[i-1];
    end

    if (i == 1) begin : g_clamp
      logic [31:0] lo;
      assign lo = greater(prev.c, EXP_LO) ? prev.c : EXP_LO;
      always_comb begin
        st_d[i]   = prev;
        st_d[i].c = greater(EXP_HI, lo) ? lo : EXP_HI;
        st_d[i].a = mul(st_d[i].c, EXP_LOG2E);
      end
    end else if (i == 2) begin : g_round
      always_comb begin
        st_d[i]   = prev;
        st_d[i].n = rint(prev.a);
        st_d[i].a = mul(st_d[i].n, EXP_LN2_HI);
      end
    end else if (i == 3) begin : g_reduce_hi
      always_comb begin
        st_d[i]   = prev;
        st_d[i].r = sub(prev.c, prev.a);
        st_d[i].a = mul(prev.n, EXP_LN2_LO);
      end
    end else if (i == 4) begin : g_reduce_lo
      always_comb begin
        st_d[i]    = prev;
        st_d[i].r  = sub(prev.r, prev.a);
        st_d[i].r2 = mul(st_d[i].r, st_d[i].r);
        st_d[i].a  = EXP_P[0];
      end
    end else if (i <= 4 + H) begin : g_horner
      always_comb begin
        st_d[i]   = prev;
        st_d[i].a = add(mul(prev.a, prev.r), EXP_P[i-4]);
      end
    end else if (i == 5 + H) begin : g_poly
      always_comb begin
        st_d[i]   = prev;
        st_d[i].a = add(mul(prev.a, prev.r2), prev.r);
      end
    end else if (i == 6 + H) begin : g_plus_one
      always_comb begin
        st_d[i]   = prev;
        st_d[i].a = add(prev.a, EXP_ONE);
      end
    end else if (i == 7 + H) begin : g_scale_half
      always_comb begin
        st_d[i]   = prev;
        st_d[i].a = mul(prev.a, pow2(to_int(prev.n) >>> 1));
      end
    end else begin : g_scale_rest
      logic signed [31:0] ni;
      assign ni = to_int(prev.n);
      always_comb begin
        st_d[i]   = prev;
        st_d[i].a = prev.nan ? QNAN : mul(prev.a, pow2(ni - (ni >>> 1)));
      end
    end
  end

  // ---- elastic valid/ready: stage i takes a value when it is empty or passes its own on ------
  always_comb begin
    logic downstream_free;
    downstream_free = out_ready;
    for (int i = STAGES; i >= 1; i--) begin
      downstream_free = downstream_free || !v_q[i];
      take[i] = downstream_free;
    end
  end

  assign in_ready  = take[1];
  assign out_valid = v_q[STAGES];
  assign out_y     = st_q[STAGES].a;

  always_ff @(posedge clk) begin
    if (!rst_n) begin
      for (int i = 1; i <= STAGES; i++) v_q[i] <= 1'b0;
    end else begin
      for (int i = 1; i <= STAGES; i++) begin
        if (take[i]) begin
          v_q[i]  <= (i == 1) ? in_valid : v_q[i-1];
          st_q[i] <= st_d[i];
        end
      end
    end
  end

endmodule
