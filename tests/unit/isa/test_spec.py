from pathlib import Path

from opbsim.isa import TABLE, OpGroup, Unit
from opbsim.isa.docs import render
from opbsim.isa.spec import OPCODE_LO, UNIT_HI, UNIT_LO, FieldKind

ROOT = Path(__file__).resolve().parents[3]

REQUIRED = {
    "copy", "allreduce", "alltoall", "gemm", "gemm_acc", "add", "mul", "max", "sum", "exp", "rsqrt",
    "silu", "rope", "softmax", "rmsnorm", "topk", "gather", "scatter_add", "launch", "signal", "wait", "halt",
}


def test_the_table_covers_what_moe_and_gqa_layers_need_on_every_device_family():
    assert REQUIRED <= {s.mnemonic for s in TABLE}
    units = {u for s in TABLE for u in s.units}
    assert {Unit.XPU, Unit.PIM, Unit.PCU, Unit.PMU, Unit.DMA} <= units


def test_every_group_has_an_instruction():
    assert {s.group for s in TABLE} == set(OpGroup)


def test_opcodes_and_mnemonics_are_unique_and_opcode_zero_is_reserved():
    assert len({s.opcode for s in TABLE}) == len(TABLE)
    assert len({s.mnemonic for s in TABLE}) == len(TABLE)
    assert all(s.opcode != 0 for s in TABLE)


def test_operand_fields_lie_below_the_unit_field_and_never_overlap():
    for s in TABLE:
        used = 0
        for f in s.fields:
            assert 0 <= f.lo <= f.hi < UNIT_LO, (s.mnemonic, f.name)
            mask = ((1 << f.width) - 1) << f.lo
            assert used & mask == 0, (s.mnemonic, f.name)
            used |= mask
    assert UNIT_HI < OPCODE_LO


def test_f32_fields_are_32_bits_and_flags_are_1_bit():
    for s in TABLE:
        for f in s.fields:
            if f.kind is FieldKind.F32:
                assert f.width == 32
            if f.kind is FieldKind.FLAG:
                assert f.width == 1


def test_docs_isa_md_is_generated_from_the_table_and_not_stale():
    committed = (ROOT / "docs" / "isa.md").read_text()
    assert committed == render("markdown"), "docs/isa.md is stale: run `make docs`"


def test_the_verilog_include_names_every_opcode():
    text = render("verilog")
    for s in TABLE:
        assert f"OP_{s.mnemonic.upper()} = 8'h{s.opcode:02x};" in text
