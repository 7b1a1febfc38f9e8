"""``kernels/opb_constants.cuh``, generated: every constant the CUDA kernels share with Python.

The storage-kind codes and the op codes the kernels dispatch on (``interface.py``: ISA opcodes), the canonical
NaNs and the binary32 bit patterns of the constants of isa/elementary.py and isa/numerics.py. The
file is written by ``make docs`` (``write``); a test fails when it is stale,
so the header never restates a value by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from opbsim.isa import elementary as E
from opbsim.isa import numerics as N
from opbsim.isa.floatbits import BF16_CANONICAL_NAN_BITS, F32_CANONICAL_NAN_BITS
from opbsim.isa.fp8 import FP8_MAX, FP8_NAN_BITS
from opbsim.isa.spec import BY_OPCODE, Opcode
from opbsim.reference.interface import BINARY_OPS, KIND_CODE, UNARY_OPS

__all__ = ["FILE_NAME", "PATH", "render", "write"]

FILE_NAME = "opb_constants.cuh"
PATH = Path(__file__).parent / "kernels" / FILE_NAME


def _bits(v: float) -> int:
    return int(np.float32(v).view(np.uint32))


def _float_defines() -> list[tuple[str, str, float]]:
    """(section comment, name, value) of every float constant, in header order."""
    exp = [("EXP_LO", E.EXP_LO), ("EXP_HI", E.EXP_HI), ("LOG2E", E._LOG2E), ("LN2_HI", E._LN2_HI),
           ("LN2_LO", E._LN2_LO), *((f"EXP_P{i}", v) for i, v in enumerate(E._EXP_P))]
    trig = [("TWO_OVER_PI", E._TWO_OVER_PI), ("TWO_M12", E._TWO_M12), ("TWO_P12", E._TWO_P12),
            ("TWO_P62", 2.0**62), *((f"PIO2_{i}", v) for i, v in enumerate(E._PIO2)),
            *((f"SIN_P{i}", v) for i, v in enumerate(E._SIN_P)), *((f"COS_P{i}", v) for i, v in enumerate(E._COS_P))]
    act = [("TWO_M64", N._TWO_M64), ("GELU_C1", N._GELU_C1), ("GELU_C2", N._GELU_C2)]
    return ([("// exp (elementary.py: Cody-Waite reduction by ln 2, Cephes expf polynomial)", *c) for c in exp]
            + [("// sin/cos (reduction by pi/2 in four parts, Cephes sinf/cosf polynomials)", *c) for c in trig]
            + [("// silu / gelu (numerics._times_sigmoid, numerics.gelu)", *c) for c in act])


def render() -> str:
    out = ["// Generated from opbsim/reference/interface.py, isa/spec.py, isa/elementary.py and isa/numerics.py by",
           "// opbsim/reference/constants_header.py (make docs). Do not edit by hand.",
           "#ifndef OPBSIM_CONSTANTS_CUH", "#define OPBSIM_CONSTANTS_CUH", ""]
    out += [f"#define OPB_{kind.upper()} {code}" for kind, code in KIND_CODE.items()]
    out += ["", f"#define OPB_F32_NAN 0x{F32_CANONICAL_NAN_BITS:08X}u",
            f"#define OPB_BF16_NAN 0x{BF16_CANONICAL_NAN_BITS:04X}u",
            f"#define OPB_NEG_INF 0x{_bits(-np.inf):08X}u", f"#define OPB_NEG_ZERO 0x{_bits(-0.0):08X}u",
            "// fp8 e4m3 (isa/fp8.py): NaN code; fp32 bits of the largest finite, smallest normal, smallest subnormal",
            f"#define OPB_FP8_NAN 0x{FP8_NAN_BITS:02X}u", f"#define OPB_FP8_MAX 0x{_bits(FP8_MAX):08X}u",
            f"#define OPB_FP8_MIN_NORMAL 0x{_bits(2.0**-6):08X}u", f"#define OPB_FP8_SUBNORMAL 0x{_bits(2.0**-9):08X}u"]
    section = None
    for comment, name, value in _float_defines():
        if comment != section:
            out.append(comment)
            section = comment
        out.append(f"#define OPB_{name} 0x{_bits(value):08X}u  // {float(np.float32(value)):.9g}")
    out += ["", "// unary op codes (interface.UNARY_OPS: the instructions' opcodes of isa/spec.py)"]
    out += [f"#define OPB_OP_{op.upper()} {code}" for op, code in UNARY_OPS.items()]
    out += ["// binary op codes (interface.BINARY_OPS: the instructions' opcodes of isa/spec.py)"]
    out += [f"#define OPB_OP_{op.upper()} {code}" for op, code in BINARY_OPS.items()]
    groups = BY_OPCODE[Opcode.TOPK_GROUPED].field("groups")
    out += ["// topk_grouped: the most groups its `groups` field can name (isa/spec.py)",
            f"#define OPB_MAX_GROUPS {(1 << groups.width) - 1}"]
    out += ["", "#endif", ""]
    return "\n".join(out)


def write() -> Path:
    """Write the header next to the kernels; returns its path."""
    PATH.write_text(render(), encoding="utf-8")
    return PATH
