"""The generated Verilog includes (ISA opcodes, exp constants) must not go stale."""

from opbsim.isa.docs import render
from opbsim.isa.elementary import exp
from opbsim.rtl_models.generate import EXP_INCLUDE, GENERATED, render_exp_constants
from opbsim.rtl_models.toolchain import HDL_DIR, ISA_INCLUDE


def test_the_verilog_isa_include_equals_a_fresh_rendering_of_the_isa_table():
    assert ISA_INCLUDE.read_text(encoding="utf-8") == render("verilog"), (
        f"{ISA_INCLUDE} is stale: run `opbsim rtl generate`"
    )


def test_the_exp_constants_include_equals_a_fresh_rendering_of_the_exp_definition():
    assert EXP_INCLUDE.read_text(encoding="utf-8") == render_exp_constants(), (
        f"{EXP_INCLUDE} is stale: run `opbsim rtl generate`"
    )
    assert "localparam int EXP_HORNER_STEPS = 5;" in render_exp_constants()  # exp_unit: 8 + 5 stages
    assert exp.__module__ == "opbsim.isa.elementary"  # the definition the constants are read from


def test_every_include_under_hdl_is_generated():
    assert set(HDL_DIR.glob("*.svh")) == set(GENERATED)
