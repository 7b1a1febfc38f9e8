"""The Verilog ISA include is generated from the ISA table and must not go stale."""

from opbsim.isa.docs import render
from opbsim.rtl_models.toolchain import ISA_INCLUDE


def test_the_verilog_isa_include_equals_a_fresh_rendering_of_the_isa_table():
    assert ISA_INCLUDE.read_text(encoding="utf-8") == render("verilog"), (
        f"{ISA_INCLUDE} is stale: run `opbsim rtl generate`"
    )
