"""Bad assembly and bad binaries: exact messages, file:line:column, byte offsets."""

import struct

import pytest

from opbsim.errors import AsmError, DecodeError
from opbsim.isa import assemble, encode
from opbsim.isa.encoding import WORD_B
from opbsim.isa.spec import BY_MNEMONIC, OPCODE_LO

EXAMPLE_SOURCE = """\
.desc x hbm 0x0 bf16 [4, 8]
.desc w hbm 0x40 bf16 [8, 8]
.desc y sram 0 fp32 [4, 8]
top:
    gemm.xpu y, x, w        ; y = x w
    softmax.pim y, y, scale=0.5
    launch.pcu top, count=1, pcus=8, pmus=8
    halt
"""


def asm_error(text: str) -> AsmError:
    with pytest.raises(AsmError) as e:
        assemble(text, file="k.s")
    return e.value


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        ("frob x\n", 1, 1, "unknown mnemonic 'frob'"),
        (".desc x hbm 0 bf16 [4]\ngemm x, x, x\n", 2, 1, "gemm needs a unit suffix: gemm.xpu|gemm.pim|gemm.pcu"),
        (".desc x hbm 0 bf16 [4]\ngemm.dma x, x, x\n", 2, 6, "expected gemm.xpu|gemm.pim|gemm.pcu, found 'gemm.dma'"),
        ("halt extra\n", 1, 6, "halt has no immediate 'extra' (immediates: none)"),
        (".desc x hbm 0 bf16 [4]\nadd.xpu x, x\n", 2, 13, "expected ',' before operand b, found end of line"),
        (".desc x hbm 0 bf16 [4]\nadd.xpu x, x, nope\n", 2, 15, "unknown descriptor 'nope'"),
        (".desc x hbm 0 bf16 [4]\nrmsnorm.xpu x, x, x\n", 2, 20, "rmsnorm needs eps=..."),
        (".desc x hbm 0 bf16 [4]\ntopk.xpu x, x, x, k=256\n", 2, 21,
         "expected k (a 8-bit unsigned integer) in 0..255, found '256'"),
        (".desc x hbm 0 bf16 [4]\nscale.xpu x, x, factor=1e39\n", 2, 24, "factor=1e39 does not fit a finite binary32"),
        (".desc x hbm 0 bf16 [4]\nscale.xpu x, x, gain=2\n", 2, 17,
         "scale has no immediate 'gain' (immediates: factor)"),
        (".desc x hbm 0 bf16 [4]\nscale.xpu x, x, factor=2, factor=3\n", 2, 27, "factor given twice"),
        (".desc x tcm 0 bf16 [4]\n", 1, 9, "expected an address space (hbm|ddr|sram|pimbuf|host), found 'tcm'"),
        (".desc x hbm 0 f16 [4]\n", 1, 15, "expected a dtype (bf16|fp32|i32|fp8_e4m3), found 'f16'"),
        (".desc x hbm 0 bf16 [4, 0]\n", 1, 20, "descriptor x: dimensions must be in 1..2^32-1"),
        (".desc x hbm 0 bf16 [1, 1, 1, 1, 1]\n", 1, 20, "descriptor x: rank 5 is outside 1..4"),
        (".desc x hbm 0 bf16 [4 4]\n", 1, 23, "expected ',' or ']' in the shape, found '4'"),
        (".desc x hbm 0 bf16 [4]\n.desc x hbm 0 bf16 [4]\n", 2, 7, "'x' is already defined"),
        ("launch.pcu nowhere, count=1, pcus=1, pmus=1\n", 1, 12, "undefined label 'nowhere'"),
        ("a:\na:\n", 2, 1, "'a' is already defined"),
        ("halt $\n", 1, 6, "unexpected character '$'"),
        ("wait.xpu token=-1\n", 1, 16, "expected token (a 8-bit unsigned integer) in 0..255, found '-1'"),
    ],
)
def test_assembly_errors_name_file_line_column_and_what_was_expected(text, line, col, message):
    err = asm_error(text)
    assert (err.line, err.column, err.message) == (line, col, message)
    assert str(err) == f"k.s:{line}:{col}: {message}"


def test_a_valid_source_assembles_with_its_comment_as_the_note():
    program = assemble(EXAMPLE_SOURCE)
    assert program.instructions[0].note == "y = x w"
    assert [i.mnemonic for i in program.instructions] == ["gemm", "softmax", "launch", "halt"]


def _word_offset(index: int) -> int:
    return 32 + 3 * 48 + 1 * 8 + index * WORD_B  # header, 3 descriptors, 1 label


def _set_word(data: bytes, index: int, word: int) -> bytes:
    at = _word_offset(index)
    return data[:at] + word.to_bytes(WORD_B, "little") + data[at + WORD_B:]


def _word(data: bytes, index: int) -> int:
    at = _word_offset(index)
    return int.from_bytes(data[at:at + WORD_B], "little")


def decode_error(data: bytes) -> DecodeError:
    from opbsim.isa import decode

    with pytest.raises(DecodeError) as e:
        decode(data)
    return e.value


def test_an_unknown_opcode_is_rejected_with_the_byte_offset_of_its_word():
    good = encode(assemble(EXAMPLE_SOURCE))
    bad = _set_word(good, 1, 0xEE << OPCODE_LO)
    err = decode_error(bad)
    assert (err.offset, err.message) == (_word_offset(1), "unknown opcode 0xee")


def test_a_reserved_bit_set_in_a_word_is_rejected_with_its_offset():
    good = encode(assemble(EXAMPLE_SOURCE))
    bad = _set_word(good, 3, _word(good, 3) | 1)  # halt has no operands: bit 0 is reserved
    err = decode_error(bad)
    assert (err.offset, err.message) == (_word_offset(3), "reserved bits set in a halt word")


def test_a_unit_that_cannot_run_the_opcode_is_rejected():
    good = encode(assemble(EXAMPLE_SOURCE))
    word = (BY_MNEMONIC["halt"].opcode << OPCODE_LO) | (2 << 116)
    err = decode_error(_set_word(good, 3, word))
    assert err.message == "halt cannot run on unit code 2"


def test_a_truncated_program_names_the_byte_offset_where_it_ends():
    good = encode(assemble(EXAMPLE_SOURCE))
    err = decode_error(good[:-3])
    assert err.offset == len(good) - 3
    assert err.message == f"truncated: the header declares {len(good)} bytes, got {len(good) - 3}"


def test_trailing_bytes_are_rejected():
    good = encode(assemble(EXAMPLE_SOURCE))
    err = decode_error(good + b"\0")
    assert (err.offset, err.message) == (len(good), "1 trailing bytes after the string table")


def test_a_non_finite_f32_immediate_is_rejected():
    good = encode(assemble(EXAMPLE_SOURCE))
    field = BY_MNEMONIC["softmax"].field("scale")
    inf_bits = struct.unpack("<I", struct.pack("<f", float("inf")))[0]
    word = _word(good, 1) & ~(((1 << 32) - 1) << field.lo) | (inf_bits << field.lo)
    err = decode_error(_set_word(good, 1, word))
    assert err.message == "softmax operand scale is not finite"


def test_a_bad_magic_and_a_future_version_are_rejected():
    good = encode(assemble(EXAMPLE_SOURCE))
    assert decode_error(b"ELF\x7f" + good[4:]).message == "bad magic b'ELF\\x7f', expected b'OPBS'"
    assert decode_error(good[:4] + b"\x02\x00" + good[6:]).message == "unsupported version 2, expected 1"


def test_a_hex_immediate_longer_than_a_double_is_an_error_not_an_overflow():
    text = ".desc x hbm 0 fp32 [4]\nscale.xpu x, x, factor=0x" + "f" * 300 + "\n"
    with pytest.raises(AsmError, match=r"^t\.s:2:24: factor=0xf{35}\.\.\. does not fit a finite binary32$"):
        assemble(text, file="t.s")


def test_an_error_quotes_at_most_40_characters_of_a_long_token():
    with pytest.raises(AsmError) as e:
        assemble("x" * 100_000 + " a\n", file="t.s")
    assert str(e.value) == "t.s:1:1: unknown mnemonic '" + "x" * 37 + "...'"
