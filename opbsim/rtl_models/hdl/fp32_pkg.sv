// IEEE-754 binary32 arithmetic of the datapath units, as combinational functions.
//
// The contract is the one of opbsim/isa/numerics.py (docs/rtl.md):
//   * every result is rounded once, to nearest with ties to even;
//   * subnormal inputs and results are kept (no flush to zero, no denormals-are-zero);
//   * overflow gives an infinity, infinities follow IEEE-754 (inf - inf and 0 * inf are invalid);
//   * every NaN result is the canonical quiet NaN 32'h7FC0_0000: input payloads and signs of NaNs
//     are not propagated.
// bf16 is the upper half of a binary32 word, so a bf16 operand enters as {x, 16'h0000}: the
// product of two bf16 values is then the ordinary binary32 product, exact unless it overflows or
// falls below the normal range (there it is rounded like any other product).
package fp32_pkg;
  // The helpers take whole words and read only the bits they need.
  /* verilator lint_off UNUSEDSIGNAL */

  localparam logic [31:0] QNAN = 32'h7FC0_0000;

  // Working significand: carry bit, 24 significant bits, 26 bits below them. Wide enough that an
  // aligned addend shifted by up to 25 places loses nothing, and a 24 x 24-bit product (48 bits)
  // fits whole; anything further right is folded into a sticky bit at bit 0.
  localparam int SW = 51;

  typedef logic signed [11:0] exp_t;  // unbiased exponents of intermediate results
  typedef logic [SW-1:0] sig_t;

  function automatic logic is_nan(input logic [31:0] x);
    return x[30:23] == 8'hFF && x[22:0] != 23'h0;
  endfunction

  function automatic logic is_inf(input logic [31:0] x);
    return x[30:23] == 8'hFF && x[22:0] == 23'h0;
  endfunction

  function automatic logic is_zero(input logic [31:0] x);
    return x[30:0] == 31'h0;
  endfunction

  // Number of leading zeros of x (SW when x is zero).
  function automatic logic [6:0] clz(input sig_t x);
    logic [6:0] n;
    n = 7'(SW);
    for (int i = 0; i < SW; i++) if (x[i]) n = 7'(SW - 1 - i);
    return n;
  endfunction

  // x >> d with every bit shifted out ORed into bit 0 (d >= SW clears x to its sticky bit).
  function automatic sig_t shift_right_sticky(input sig_t x, input logic [8:0] d);
    sig_t lost;
    sig_t y;
    lost = x & ~({SW{1'b1}} << d);
    y = x >> d;
    y[0] = y[0] | (|lost);
    return y;
  endfunction

  // Round and pack sign s, exponent e and significand m: the value m * 2^(e - (SW-1)), where
  // m[SW-1] is the leading one (m != 0). Handles overflow to infinity and gradual underflow.
  function automatic logic [31:0] round_pack(input logic s, input exp_t e, input sig_t m);
    exp_t bexp;
    sig_t sh;
    logic [23:0] kept;
    logic half, rest, up;
    logic [30:0] mag;
    bexp = e + 12'sd127;
    if (bexp >= 12'sd255) return {s, 8'hFF, 23'h0};
    sh = m;
    if (bexp < 12'sd1) begin
      // Below the normal range: align to the fixed subnormal grid (2^-149), exponent field 0.
      sh = shift_right_sticky(m, (12'sd1 - bexp > 12'(SW)) ? 9'(SW) : 9'(12'sd1 - bexp));
      bexp = 12'sd0;
    end
    kept = sh[SW-1-:24];
    half = sh[SW-25];
    rest = |sh[SW-26:0];
    up = half & (rest | kept[0]);
    // A carry out of the fraction bumps the exponent: subnormal -> normal, max finite -> infinity.
    mag = {bexp[7:0], kept[22:0]} + 31'(up);
    return {s, mag};
  endfunction

  // Unbiased exponent and 24-bit significand (hidden bit included) of a finite x.
  function automatic exp_t exp_of(input logic [31:0] x);
    return (x[30:23] == 8'h0) ? -12'sd126 : exp_t'({4'h0, x[30:23]}) - 12'sd127;
  endfunction

  function automatic logic [23:0] sig_of(input logic [31:0] x);
    return {x[30:23] != 8'h0, x[22:0]};
  endfunction

  // a * b, binary32, rounded once.
  function automatic logic [31:0] mul(input logic [31:0] a, input logic [31:0] b);
    logic s;
    logic [47:0] p;
    sig_t m;
    logic [6:0] lz;
    s = a[31] ^ b[31];
    if (is_nan(a) || is_nan(b)) return QNAN;
    if ((is_inf(a) && is_zero(b)) || (is_zero(a) && is_inf(b))) return QNAN;
    if (is_inf(a) || is_inf(b)) return {s, 8'hFF, 23'h0};
    if (is_zero(a) || is_zero(b)) return {s, 31'h0};
    p = sig_of(a) * sig_of(b);  // value p * 2^(ea + eb - 46), exact
    m = {3'b000, p};
    lz = clz(m);
    m = m << lz;
    return round_pack(s, exp_of(a) + exp_of(b) - 12'sd46 + 12'(SW - 1) - 12'(lz), m);
  endfunction

  // The exact fp32 product of two bf16 values (rounded only at the range extremes).
  function automatic logic [31:0] mul_bf16(input logic [15:0] a, input logic [15:0] b);
    return mul({a, 16'h0}, {b, 16'h0});
  endfunction

  // a + b, binary32, rounded once. An exact zero sum is +0, except (-0) + (-0) = -0.
  function automatic logic [31:0] add(input logic [31:0] a, input logic [31:0] b);
    logic [31:0] x, y;  // |x| >= |y|
    exp_t ex, ey;
    sig_t sx, sy, sum;
    logic [6:0] lz;
    if (is_nan(a) || is_nan(b)) return QNAN;
    if (is_inf(a) && is_inf(b) && a[31] != b[31]) return QNAN;
    if (is_inf(a)) return a;
    if (is_inf(b)) return b;
    if (a[30:0] >= b[30:0]) begin
      x = a;
      y = b;
    end else begin
      x = b;
      y = a;
    end
    ex = exp_of(x);
    ey = exp_of(y);
    sx = {1'b0, sig_of(x), 26'h0};  // bit SW-2 weighs 2^ex
    sy = shift_right_sticky({1'b0, sig_of(y), 26'h0}, (ex - ey > 12'(SW)) ? 9'(SW) : 9'(ex - ey));
    sum = (x[31] == y[31]) ? sx + sy : sx - sy;
    if (sum == '0) return {x[31] & y[31], 31'h0};
    lz = clz(sum);
    return round_pack(x[31], ex + 12'sd1 - 12'(lz), sum << lz);
  endfunction

  // x rounded to an integral value, ties to even (IEEE roundToIntegralTiesToEven, numpy rint);
  // the sign of zero is kept (rint(-0.3) = -0).
  function automatic logic [31:0] rint(input logic [31:0] x);
    logic [4:0] fbits;  // fraction bits of x below the units place, 1..24
    logic [23:0] sig, whole, rem, half;
    logic [6:0] lz;
    sig_t m;
    if (is_nan(x)) return QNAN;
    if (x[30:23] >= 8'd150) return x;  // |x| >= 2^23 (or inf): already integral
    if (x[30:23] < 8'd126) return {x[31], 31'h0};  // |x| < 0.5
    fbits = 5'(8'd150 - x[30:23]);
    sig = sig_of(x);
    whole = sig >> fbits;
    rem = sig & ~(24'hFF_FFFF << fbits);
    half = 24'h1 << (fbits - 5'd1);
    whole = whole + 24'((rem > half) || (rem == half && whole[0]));
    if (whole == 24'h0) return {x[31], 31'h0};
    m = {27'h0, whole};
    lz = clz(m);
    return round_pack(x[31], 12'(SW - 1) - 12'(lz), m << lz);  // exact: whole < 2^24
  endfunction

  // The integer value of an integral x with |x| < 2^23 (two's complement).
  function automatic logic signed [31:0] to_int(input logic [31:0] x);
    logic [31:0] mag;
    if (x[30:23] < 8'd127) return 32'sd0;
    mag = 32'(sig_of(x)) >> (8'd150 - x[30:23]);
    return x[31] ? -$signed(mag) : $signed(mag);
  endfunction

  // 2^e as a binary32 word, for -126 <= e <= 127 (exact).
  function automatic logic [31:0] pow2(input logic signed [31:0] e);
    return {1'b0, 8'(e + 32'sd127), 23'h0};
  endfunction

  // a - b, binary32 (a + (-b), exactly as IEEE-754 defines subtraction).
  function automatic logic [31:0] sub(input logic [31:0] a, input logic [31:0] b);
    return add(a, {~b[31], b[30:0]});
  endfunction

  // a > b for non-NaN a, b (+0 and -0 compare equal).
  function automatic logic greater(input logic [31:0] a, input logic [31:0] b);
    return order_key(a) > order_key(b);
  endfunction

  // A total order for ranking: a larger key is a larger value; -0 and +0 share a key; every NaN
  // has the key 32'hFFFF_FFFF, above +inf (so NaNs tie with each other and rank first).
  function automatic logic [31:0] order_key(input logic [31:0] x);
    if (is_nan(x)) return 32'hFFFF_FFFF;
    if (is_zero(x)) return 32'h8000_0000;
    return x[31] ? ~x : {1'b1, x[30:0]};
  endfunction

  /* verilator lint_on UNUSEDSIGNAL */
endpackage
