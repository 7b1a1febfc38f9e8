"""THE instruction table. Encoder, decoder, assembler, disassembler and docs are generated from it.

Every instruction is a fixed-width 128-bit word:

    [127:120] opcode    [119:116] unit    [115:0] operand fields, packed from bit 115 downward

Bits not covered by a field are reserved and must be zero. Operand fields are declared in
assembly order; their bit ranges are assigned by ``_op`` when the table is built, so a field
can never overlap another.

Adding an instruction (``tanh``, say, an elementwise VECTOR op): an ``Opcode`` member and a TABLE
entry here (encoding, assembly, docs, the Verilog include, its cost in emulator/work.py and the
FLOP counts follow from the entry: ``group``, ``ops_per_element``); its definition in
``numerics.SEMANTICS``; its value handler in emulator/ops.py; for an elementwise op, its GPU kernel
op (reference/interface.py, reference/kernels/numerics.cuh); then ``make docs`` to regenerate the
generated files. tests/unit/isa/test_completeness.py fails until every registry has it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from opbsim.isa.types import OpGroup, Unit

__all__ = [
    "WORD_BITS",
    "Opcode",
    "OPCODE_HI",
    "OPCODE_LO",
    "UNIT_HI",
    "UNIT_LO",
    "FieldKind",
    "Role",
    "Field",
    "OpSpec",
    "TABLE",
    "BY_MNEMONIC",
    "BY_OPCODE",
    "spec_of",
]

WORD_BITS = 128
OPCODE_HI, OPCODE_LO = 127, 120
UNIT_HI, UNIT_LO = 119, 116
_FIRST_FIELD_BIT = 115

DESC_BITS = 16  # descriptor-table index: at most 65536 descriptors per program
LABEL_BITS = 32  # instruction index


@enum.unique
class Opcode(enum.IntEnum):
    """Every instruction's opcode, the value of bits [127:120]; the member name upper-cased is its
    mnemonic. Registries of per-instruction behaviour (value handlers, costs, numerics) are keyed by
    it, and tests/unit/isa/test_completeness.py checks each covers every member."""

    COPY = 0x01
    ALLREDUCE = 0x08
    ALLGATHER = 0x0A
    ALLTOALL = 0x09
    GEMM = 0x10
    GEMM_ACC = 0x11
    GEMM_FP8 = 0x12
    ADD = 0x20
    SUB = 0x21
    MUL = 0x22
    DIV = 0x23
    MAX = 0x24
    SUM = 0x25
    EXP = 0x26
    RSQRT = 0x27
    SILU = 0x28
    RELU = 0x2C
    GELU = 0x2D
    SIGMOID = 0x2E
    CLAMP = 0x2F
    ROPE = 0x29
    SCALE = 0x2A
    CVT = 0x2B
    QUANT = 0x39
    ACT_QUANT = 0x3A
    SOFTMAX = 0x30
    SOFTMAX_MASKED = 0x38
    RMSNORM = 0x31
    LAYERNORM = 0x36
    TOPK = 0x32
    TOPK_GROUPED = 0x37
    GATHER = 0x33
    SCATTER = 0x35
    SCATTER_ADD = 0x34
    LAUNCH = 0x40
    SIGNAL = 0x50
    WAIT = 0x51
    HALT = 0x7F

    @property
    def mnemonic(self) -> str:
        return self.name.lower()


class FieldKind(enum.Enum):
    DESC = "desc"  # index into the descriptor table; written as the descriptor's name
    LABEL = "label"  # instruction index; written as a label name
    UINT = "uint"  # unsigned integer immediate
    FLAG = "flag"  # 1-bit immediate, 0 or 1
    F32 = "f32"  # IEEE-754 binary32 immediate (finite values only)


class Role(enum.Enum):
    """How an instruction uses a descriptor operand (drives dependency analysis)."""

    IN = "in"
    OUT = "out"
    INOUT = "inout"
    NONE = "-"  # not a descriptor


@dataclass(frozen=True, slots=True)
class Field:
    """One operand field: its kind, its bit range [hi:lo] in the word, and what it means.

    Descriptor and label fields are positional in assembly; immediates are written ``name=value``
    and may be omitted when ``default`` is not None.
    """

    name: str
    kind: FieldKind
    hi: int
    lo: int
    doc: str
    role: Role = Role.NONE
    default: int | float | None = None

    @property
    def width(self) -> int:
        return self.hi - self.lo + 1

    @property
    def positional(self) -> bool:
        return self.kind in (FieldKind.DESC, FieldKind.LABEL)


@dataclass(frozen=True, slots=True)
class OpSpec:
    """One instruction: mnemonic, opcode, the units that may execute it, operand fields, doc.
    ``ops_per_element``: the fp32 operations a SIMD datapath issues per element of its output (of
    ``src`` for ``scatter_add``), not the ones a polynomial expands to; 0 for matrix, data-movement,
    collective and control instructions. The timing model and the workloads' FLOP counts both read it."""

    mnemonic: str
    opcode: Opcode
    group: OpGroup
    units: tuple[Unit, ...]
    fields: tuple[Field, ...]
    doc: str
    ops_per_element: int = 0

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.mnemonic} has no field {name!r}")

    @property
    def reads(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.role in (Role.IN, Role.INOUT))

    @property
    def writes(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.role in (Role.OUT, Role.INOUT))

    @property
    def unit_implied(self) -> bool:
        """True when only one unit can execute it, so assembly omits the ``.unit`` suffix."""
        return len(self.units) == 1


@dataclass(frozen=True, slots=True)
class _F:
    """A field before bit allocation."""

    name: str
    kind: FieldKind
    width: int
    doc: str
    role: Role = Role.NONE
    default: int | float | None = None


def _in(name: str, doc: str) -> _F:
    return _F(name, FieldKind.DESC, DESC_BITS, doc, Role.IN)


def _out(name: str, doc: str) -> _F:
    return _F(name, FieldKind.DESC, DESC_BITS, doc, Role.OUT)


def _inout(name: str, doc: str) -> _F:
    return _F(name, FieldKind.DESC, DESC_BITS, doc, Role.INOUT)


def _label(name: str, doc: str) -> _F:
    return _F(name, FieldKind.LABEL, LABEL_BITS, doc)


def _uint(name: str, width: int, doc: str, default: int | None = None) -> _F:
    return _F(name, FieldKind.UINT, width, doc, default=default)


def _flag(name: str, doc: str, default: int | None = 0) -> _F:
    return _F(name, FieldKind.FLAG, 1, doc, default=default)


def _f32(name: str, doc: str, default: float | None = None) -> _F:
    return _F(name, FieldKind.F32, 32, doc, default=default)


def _op(opcode: Opcode, group: OpGroup, units: tuple[Unit, ...], doc: str, *fields: _F, ops: int = 0) -> OpSpec:
    mnemonic = opcode.mnemonic
    placed = []
    hi = _FIRST_FIELD_BIT
    for f in fields:
        lo = hi - f.width + 1
        if lo < 0:
            raise ValueError(f"{mnemonic}: operand fields exceed the {WORD_BITS}-bit word")
        placed.append(Field(f.name, f.kind, hi, lo, f.doc, f.role, f.default))
        hi = lo - 1
    return OpSpec(mnemonic, opcode, group, units, tuple(placed), doc, ops)


_COMPUTE = (Unit.XPU, Unit.PIM, Unit.PCU)
_COLLECTIVE_UNITS = (Unit.DMA, Unit.PCU)  # on a pcu: a stage of a dataflow kernel streaming over the links
_ISSUERS = (Unit.XPU, Unit.PIM, Unit.PCU, Unit.PMU, Unit.DMA)
_G = OpGroup

TABLE: tuple[OpSpec, ...] = (
    # --- DMA: transfers between address spaces --------------------------------------------
    _op(Opcode.COPY, _G.DMA, (Unit.DMA, Unit.PMU),
        "dst = src, element by element, between any address spaces; shapes and dtypes equal",
        _out("dst", "destination view"), _in("src", "source view")),
    # --- collectives between devices of a group -------------------------------------------
    _op(Opcode.ALLREDUCE, _G.COLLECTIVE, _COLLECTIVE_UNITS,
        "dst = sum of src over the devices of the group, fp32, added in device order 0..n-1",
        _out("dst", "reduced result, on every device"), _in("src", "this device's contribution"),
        _uint("devices", 8, "devices in the group (>= 2)")),
    _op(Opcode.ALLGATHER, _G.COLLECTIVE, _COLLECTIVE_UNITS,
        "dst[i] = src of device i of the group, for every device in order",
        _out("dst", "[devices, ...] gathered slices, on every device"), _in("src", "this device's slice"),
        _uint("devices", 8, "devices in the group (>= 2)")),
    _op(Opcode.ALLTOALL, _G.COLLECTIVE, _COLLECTIVE_UNITS,
        "slice j of src's leading axis goes to device j; dst slice i comes from device i",
        _out("dst", "received slices"), _in("src", "slices to send"),
        _uint("devices", 8, "devices in the group (>= 2)")),
    # --- matrix ----------------------------------------------------------------------------
    _op(Opcode.GEMM, _G.MATRIX, _COMPUTE,
        "dst[..,m,n] = sum over k = 0..K-1, in order, of a[..,m,k] * b[..,k,n] (fp32 products and adds); "
        "leading axes are batch axes, equal in all three (broadcast by stride-0 views)",
        _out("dst", "[..., M, N] bf16 or fp32 (rounded RNE once at the end)"),
        _in("a", "[..., M, K] bf16"), _in("b", "[..., K, N] bf16 (a transposed weight is a strided view)")),
    _op(Opcode.GEMM_ACC, _G.MATRIX, _COMPUTE,
        "dst[..,m,n] continues its fp32 sum: += a[..,m,k] * b[..,k,n] for k = 0..K-1 in order",
        _inout("dst", "[..., M, N] fp32 partial sums"), _in("a", "[..., M, K] bf16"), _in("b", "[..., K, N] bf16")),
    _op(Opcode.GEMM_FP8, _G.MATRIX, _COMPUTE,
        "block-scaled fp8 GEMM: per k block j (block_k deep), p = sum over its k, in order, of a[..,m,k] * "
        "b[..,k,n] (fp32 from +0); then acc = acc + (sa[..,m,j] * sb[..,j,n/block_n]) * p in block order "
        "(fp32 from +0); leading axes are batch axes",
        _out("dst", "[..., M, N] bf16 or fp32 (rounded RNE once at the end)"),
        _in("a", "[..., M, K] bf16 or fp8_e4m3 activations"),
        _in("b", "[..., K, N] fp8_e4m3 (a transposed weight or KV cache is a strided view)"),
        _in("sa", "[..., M, ceil(K/block_k)] fp32 activation scales (unscaled: a stride-0 view of 1.0)"),
        _in("sb", "[..., ceil(K/block_k), ceil(N/block_n)] fp32 weight-block scales (per tensor: stride 0)"),
        _uint("block_k", 16, "k extent of a scale block (>= 1)", default=128),
        _uint("block_n", 16, "n extent of a weight scale block (>= 1)", default=128)),
    # --- vector: elementwise (equal shapes; broadcast by stride-0 views) and reductions --------
    _op(Opcode.ADD, _G.VECTOR, _COMPUTE, "dst = a + b",
        _out("dst", "result"), _in("a", "left operand"), _in("b", "right operand"), ops=1),
    _op(Opcode.SUB, _G.VECTOR, _COMPUTE, "dst = a - b",
        _out("dst", "result"), _in("a", "left operand"), _in("b", "right operand"), ops=1),
    _op(Opcode.MUL, _G.VECTOR, _COMPUTE, "dst = a * b",
        _out("dst", "result"), _in("a", "left operand"), _in("b", "right operand"), ops=1),
    _op(Opcode.DIV, _G.VECTOR, _COMPUTE, "dst = a / b",
        _out("dst", "result"), _in("a", "numerator"), _in("b", "denominator"), ops=1),
    _op(Opcode.MAX, _G.VECTOR, _COMPUTE, "dst[..., 0] = max over the last axis of src",
        _out("dst", "[..., 1]"), _in("src", "[..., N]"), ops=1),
    _op(Opcode.SUM, _G.VECTOR, _COMPUTE,
        "dst[..., 0] = sum over the last axis of src, fp32, in index order",
        _out("dst", "[..., 1]"), _in("src", "[..., N]"), ops=1),
    _op(Opcode.EXP, _G.VECTOR, _COMPUTE, "dst = exp(src) by the numerics definition",
        _out("dst", "result"), _in("src", "input"), ops=1),  # one special-function op
    _op(Opcode.RSQRT, _G.VECTOR, _COMPUTE, "dst = 1 / sqrt(src), correctly rounded steps",
        _out("dst", "result"), _in("src", "input"), ops=1),  # one special-function op
    _op(Opcode.SILU, _G.VECTOR, _COMPUTE, "dst = src * sigmoid(src) by the numerics definition (no overflow)",
        _out("dst", "result"), _in("src", "input"), ops=3),  # exp, add, divide
    _op(Opcode.SIGMOID, _G.VECTOR, _COMPUTE, "dst = 1 / (1 + exp(-src)) by the numerics definition (no overflow)",
        _out("dst", "result"), _in("src", "input"), ops=3),  # exp, add, divide
    _op(Opcode.RELU, _G.VECTOR, _COMPUTE, "dst = src if src > 0 else +0 (NaN stays NaN)",
        _out("dst", "result"), _in("src", "input"), ops=1),
    _op(Opcode.GELU, _G.VECTOR, _COMPUTE,
        "dst = src * sigmoid(2 sqrt(2/pi) (src + 0.044715 src^3)) (GELU, tanh form) by the numerics definition",
        _out("dst", "result"), _in("src", "input"), ops=6),  # square, multiply-add, multiply, exp, add, divide
    _op(Opcode.ROPE, _G.VECTOR, _COMPUTE,
        "rotary embedding of the last axis (halves rotated) by angle pos * freq[i], cos and sin scaled by "
        "mscale (positions below 2^24)",
        _out("dst", "[..., T, D]"), _in("src", "[..., T, D]"), _in("pos", "[T] i32 positions"),
        _in("freq", "[D/2] fp32 frequencies (theta^(-2i/D), or a long-context scaling of them)"),
        _f32("mscale", "cos and sin factor (YaRN's attention factor; 1.0: unscaled)", default=1.0),
        ops=3),  # two multiplies and an add per output (angles and cos/sin scaling per position, amortised)
    _op(Opcode.SCALE, _G.VECTOR, _COMPUTE, "dst = src * factor",
        _out("dst", "result"), _in("src", "input"), _f32("factor", "fp32 multiplier"), ops=1),
    _op(Opcode.CLAMP, _G.VECTOR, _COMPUTE,
        "dst = min(max(src, lo), hi), the max only with lower=1 (NaN stays NaN)",
        _out("dst", "result"), _in("src", "input"), _f32("lo", "lower bound (with lower=1)"),
        _f32("hi", "upper bound"), _flag("lower", "apply the lower bound"), ops=2),  # compare-select twice
    _op(Opcode.CVT, _G.VECTOR, _COMPUTE,
        "dst = src converted to dst's dtype (fp32 -> bf16 rounds to nearest even; to fp8_e4m3 also, "
        "saturating to +-448; fp8_e4m3 -> bf16 / fp32 is exact)",
        _out("dst", "result"), _in("src", "input"), ops=1),
    _op(Opcode.QUANT, _G.VECTOR, _COMPUTE,
        "dst[..., i] = fp8_e4m3(src[..., i] / scale[..., i / group]): fp32 divide, then RNE saturating "
        "to +-448 (NaN -> 0x7F)",
        _out("dst", "[..., H] fp8_e4m3"), _in("src", "[..., H] bf16 or fp32"),
        _in("scale", "[..., ceil(H/group)] fp32 (per tensor: a stride-0 view)"),
        _uint("group", 16, "elements of the last axis per scale (>= 1)", default=128),
        ops=2),  # divide, convert
    _op(Opcode.ACT_QUANT, _G.VECTOR, _COMPUTE,
        "dynamic quantization of activations: per group of `group` elements of the last axis, scale = "
        "max(max |src|, 1e-10) / 448 (fp32; NaN if the group holds a NaN), dst = fp8_e4m3(src / scale) as quant",
        _out("dst", "[..., H] fp8_e4m3"), _out("scale", "[..., ceil(H/group)] fp32 scales"),
        _in("src", "[..., H] bf16 or fp32"),
        _uint("group", 16, "elements of the last axis per scale (>= 1)", default=128),
        ops=4),  # absolute value and max, divide, convert
    # --- fused units -----------------------------------------------------------------------
    _op(Opcode.SOFTMAX, _G.FUSED, _COMPUTE,
        "dst = softmax over the last axis of src * scale; with causal=1, column c of row r is "
        "masked when c > qpos + r",
        _out("dst", "[..., R, C]"), _in("src", "[..., R, C] scores"),
        _f32("scale", "multiplier applied before the max", default=1.0),
        _flag("causal", "apply the causal mask"),
        _uint("qpos", 24, "key position of the first row's query", default=0),
        ops=5),  # max, subtract (the scale folds in), exp, sum, divide
    # The softmax of attention with the masks of windowed and chunked layers and a sink column. A separate
    # opcode rather than fields on softmax: softmax's word has room, but the canonical assembly writes every
    # immediate, so new fields would change the text of every program; the two share one numerics
    # definition (numerics.softmax) and one GPU kernel (reference/kernels/rows.cu).
    _op(Opcode.SOFTMAX_MASKED, _G.FUSED, _COMPUTE,
        "dst = softmax over the last axis of src * scale with the causal mask (column c of row r masked when "
        "c > qpos + r); span W > 0 also masks c <= qpos + r - W (sliding window) or, with chunked=1, "
        "c // W != (qpos + r) // W (chunked attention); with sink=1 the last column is a logit taken "
        "unscaled and unmasked, in the max and the denominator (attention sinks)",
        _out("dst", "[..., R, C] (with sink: dst's last column is the sink's probability)"),
        _in("src", "[..., R, C] scores (with sink: the last column holds the sink logit)"),
        _f32("scale", "multiplier applied to the scores before the max", default=1.0),
        _uint("qpos", 24, "key column of the first row's query", default=0),
        _uint("span", 24, "window or chunk length in keys (0: causal mask only)", default=0),
        _flag("chunked", "span is a chunk length (0: a sliding window)"),
        _flag("sink", "the last column is a sink logit"),
        ops=5),  # max, subtract (the scale folds in), exp, sum, divide
    _op(Opcode.RMSNORM, _G.FUSED, _COMPUTE,
        "dst = src * rsqrt(mean(src^2 over the last axis) + eps) * weight",
        _out("dst", "[..., H]"), _in("src", "[..., H]"), _in("weight", "[H]"),
        _f32("eps", "variance epsilon, e.g. 1e-05"), ops=4),  # square, sum, scale, weight
    _op(Opcode.LAYERNORM, _G.FUSED, _COMPUTE,
        "dst = (src - mean) * rsqrt(var + eps) * weight + bias over the last axis",
        _out("dst", "[..., H]"), _in("src", "[..., H]"), _in("weight", "[H]"), _in("bias", "[H]"),
        _f32("eps", "variance epsilon, e.g. 1e-05"), ops=7),  # sum, subtract, square, sum, scale, weight, bias
    _op(Opcode.TOPK, _G.FUSED, _COMPUTE,
        "the k largest entries of src's last axis, descending; ties go to the lower index",
        _out("vals", "[..., k] values"), _out("idx", "[..., k] i32 indices"),
        _in("src", "[..., E] router logits or probabilities"), _uint("k", 8, "entries kept (>= 1)")),
    _op(Opcode.TOPK_GROUPED, _G.FUSED, _COMPUTE,
        "group-limited top-k (DeepSeek-V3 noaux_tc): choice = src + bias; the experts split into `groups` equal "
        "groups, each scored by the sum of its two largest choices; outside the `keep` best groups the choice "
        "is 0; idx = the k largest choices (topk order), vals = src at idx (without the bias)",
        _out("vals", "[T, k] fp32 values of src"), _out("idx", "[T, k] i32 indices"),
        _in("src", "[T, E] fp32 scores"), _in("bias", "[E] fp32 choice bias"),
        _uint("k", 8, "entries kept (>= 1)"), _uint("groups", 8, "expert groups (divides E)"),
        _uint("keep", 8, "groups kept (1..groups)")),
    _op(Opcode.GATHER, _G.FUSED, _COMPUTE, "dst[i, :] = src[idx[i], :] (MoE dispatch)",
        _out("dst", "[T, H]"), _in("src", "[S, H]"), _in("idx", "[T] i32 row indices")),
    _op(Opcode.SCATTER, _G.FUSED, _COMPUTE,
        "dst[idx[i], :] = src[i, :] for i in order, bits unchanged (KV-cache append); a later i wins; "
        "rows not named are neither read nor written",
        _inout("dst", "[S, H]"), _in("src", "[T, H]"), _in("idx", "[T] i32 row indices")),
    _op(Opcode.SCATTER_ADD, _G.FUSED, _COMPUTE,
        "dst[idx[i], :] += w[i] * src[i, :] for i in order, fp32 (MoE combine); rows not named are untouched",
        _inout("dst", "[S, H] fp32 accumulator"), _in("src", "[T, H]"),
        _in("idx", "[T] i32 row indices"), _in("w", "[T] routing weights"), ops=2),  # multiply by the weight, add
    # --- kernels: one launch, many instructions (on a PCU: an SN40L spatial dataflow kernel) ---
    _op(Opcode.LAUNCH, _G.DATAFLOW, _COMPUTE,
        "run the `count` instructions at `body` (all on this unit; no launch among them) as one kernel: "
        "one launch, then the body in order; on a pcu the body instructions are pipeline stages",
        _label("body", "first instruction of the kernel body"),
        _uint("count", 16, "instructions in the body (>= 1)"),
        _uint("pcus", 11, "pattern compute units allotted (pcu only, else 0)"),
        _uint("pmus", 11, "pattern memory units allotted (pcu only, else 0)"),
        _flag("hw", "hardware-orchestrated launch (0: software-orchestrated)"),
        _uint("sync", 8, "devices that end the kernel together, with a barrier across them (pcu only; 0 or 1: none)",
              default=0)),
    # --- synchronisation between units -----------------------------------------------------
    _op(Opcode.SIGNAL, _G.SYNC, _ISSUERS,
        "add 1 to token's count once every earlier instruction on this unit has completed",
        _uint("token", 8, "token number")),
    _op(Opcode.WAIT, _G.SYNC, _ISSUERS, "block this unit until token's count is positive, then take 1",
        _uint("token", 8, "token number")),
    # --- control ---------------------------------------------------------------------------
    _op(Opcode.HALT, _G.CONTROL, (Unit.CTRL,), "end of program: wait for every unit to drain"),
)

BY_MNEMONIC: dict[str, OpSpec] = {s.mnemonic: s for s in TABLE}
BY_OPCODE: dict[Opcode, OpSpec] = {s.opcode: s for s in TABLE}


def spec_of(mnemonic: str) -> OpSpec:
    return BY_MNEMONIC[mnemonic]


def _check_table() -> None:
    if len(BY_MNEMONIC) != len(TABLE) or len(BY_OPCODE) != len(TABLE):
        raise ValueError("duplicate mnemonic or opcode in the ISA table")
    for s in TABLE:
        if not 0 < s.opcode < 2 ** (OPCODE_HI - OPCODE_LO + 1):
            raise ValueError(f"{s.mnemonic}: opcode {s.opcode:#x} out of range (0 is reserved)")
        if not s.units or any(u >= 2 ** (UNIT_HI - UNIT_LO + 1) for u in s.units):
            raise ValueError(f"{s.mnemonic}: bad unit list")
        names = [f.name for f in s.fields]
        if len(set(names)) != len(names):
            raise ValueError(f"{s.mnemonic}: duplicate field name")
        positional = [f.positional for f in s.fields]
        if positional != sorted(positional, reverse=True):
            raise ValueError(f"{s.mnemonic}: positional operands must precede immediates")


_check_table()
