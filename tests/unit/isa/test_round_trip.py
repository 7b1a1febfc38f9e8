from hypothesis import given, settings
from hypothesis import strategies as st

from opbsim.isa import TABLE, Descriptor, DType, Label, Program, Space, assemble, decode, disassemble, encode

from .strategies import f32_bits, instructions, programs


@settings(max_examples=400, deadline=None)
@given(programs())
def test_decode_of_encode_is_the_identity_on_programs(program):
    assert decode(encode(program)) == program


@settings(max_examples=400, deadline=None)
@given(programs())
def test_assemble_of_disassemble_is_the_identity_on_programs(program):
    listing = disassemble(program)
    again = assemble(listing)
    assert again == program
    assert encode(again) == encode(program)  # also the sign of zero and every f32 bit


@settings(max_examples=200, deadline=None)
@given(programs())
def test_a_binary_disassembles_to_text_that_reassembles_to_the_same_bytes(program):
    binary = encode(program)
    assert encode(assemble(disassemble(decode(binary)))) == binary


def _one_of_each_opcode_program(data) -> Program:
    descs = tuple(Descriptor(f"d{i}", Space.HBM, 64 * i, DType.BF16, (4, 8), (8, 1)) for i in range(4))
    labels = (Label("top", 0),)
    insts = tuple(data.draw(instructions(len(descs), [0], spec)) for spec in TABLE)
    return Program(descs, insts, labels)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_every_opcode_of_the_table_round_trips_through_binary_and_text(data):
    program = _one_of_each_opcode_program(data)
    assert {i.mnemonic for i in program.instructions} == {s.mnemonic for s in TABLE}
    assert decode(encode(program)) == program
    assert assemble(disassemble(program)) == program


def test_f32_immediates_keep_every_bit_through_text():
    src = ".desc a hbm 0 fp32 [4]\n.desc b hbm 16 fp32 [4]\n"
    for value in ("-0.0", "1e-45", "3.4028235e+38", "0.1", "-1.17549435e-38"):
        program = assemble(src + f"scale.xpu a, b, factor={value}\n")
        again = assemble(disassemble(program))
        assert f32_bits(again.instructions[0]["factor"]) == f32_bits(program.instructions[0]["factor"])
