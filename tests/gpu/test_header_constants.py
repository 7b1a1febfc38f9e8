"""Every constant the kernels use is the binary32 bit pattern of the Python definition's value, in a
header generated from the Python definitions and never stale."""

from __future__ import annotations

import re

import numpy as np

from opbsim.isa import elementary as E
from opbsim.isa import numerics as N
from opbsim.isa.floatbits import BF16_CANONICAL_NAN_BITS, F32_CANONICAL_NAN_BITS
from opbsim.reference import constants_header
from opbsim.reference.interface import BINARY_OPS, KIND_CODE, UNARY_OPS
from opbsim.reference.sources import CONSTANTS_HEADER, HEADER, KERNEL_DIR

TEXT = (KERNEL_DIR / CONSTANTS_HEADER).read_text()
DEFINES = {name: int(value, 16) for name, value in re.findall(r"#define (OPB_\w+) 0x([0-9A-F]+)u", TEXT)}


def _bits(v) -> int:
    return int(np.float32(v).view(np.uint32))


def test_the_header_constants_are_the_python_definitions_bit_patterns():
    want = {
        "OPB_EXP_LO": E.EXP_LO, "OPB_EXP_HI": E.EXP_HI, "OPB_LOG2E": E._LOG2E, "OPB_LN2_HI": E._LN2_HI,
        "OPB_LN2_LO": E._LN2_LO, "OPB_TWO_OVER_PI": E._TWO_OVER_PI, "OPB_TWO_M12": E._TWO_M12,
        "OPB_TWO_P12": E._TWO_P12, "OPB_TWO_P62": 2.0**62, "OPB_TWO_M64": N._TWO_M64,
        "OPB_GELU_C1": N._GELU_C1, "OPB_GELU_C2": N._GELU_C2, "OPB_NEG_INF": -np.inf, "OPB_NEG_ZERO": -0.0,
    }
    want |= {f"OPB_EXP_P{i}": v for i, v in enumerate(E._EXP_P)}
    want |= {f"OPB_PIO2_{i}": v for i, v in enumerate(E._PIO2)}
    want |= {f"OPB_SIN_P{i}": v for i, v in enumerate(E._SIN_P)}
    want |= {f"OPB_COS_P{i}": v for i, v in enumerate(E._COS_P)}
    assert {k: DEFINES[k] for k in want} == {k: _bits(v) for k, v in want.items()}
    assert (DEFINES["OPB_F32_NAN"], DEFINES["OPB_BF16_NAN"]) == (F32_CANONICAL_NAN_BITS, BF16_CANONICAL_NAN_BITS)


def test_the_generated_header_is_what_the_generator_writes_today():
    assert TEXT == constants_header.render(), "stale: run make docs"


def test_the_kind_and_op_codes_are_the_interface_s_and_numerics_cuh_defines_none_by_hand():
    codes = dict(re.findall(r"#define (OPB_\w+) (\d+)\n", TEXT))
    assert {f"OPB_{k.upper()}": str(v) for k, v in KIND_CODE.items()}.items() <= codes.items()
    assert {f"OPB_OP_{k.upper()}": str(v) for k, v in {**UNARY_OPS, **BINARY_OPS}.items()}.items() <= codes.items()
    hand = re.findall(r"#define (OPB_\w+) (?:0x|\d)", (KERNEL_DIR / HEADER).read_text())
    assert hand == []
