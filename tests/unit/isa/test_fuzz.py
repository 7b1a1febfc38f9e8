"""Random bytes and random text only ever produce the documented error types."""

import random

import pytest

from opbsim.errors import AsmError, DecodeError
from opbsim.isa import assemble, decode, encode
from opbsim.isa.encoding import WORD_B

from .test_errors import EXAMPLE_SOURCE

N = 10_000


def test_ten_thousand_random_byte_strings_raise_only_decode_errors():
    rng = random.Random(1)
    for _ in range(N):
        data = rng.randbytes(rng.randrange(0, 200))
        if rng.random() < 0.5:  # a valid header start reaches the deeper checks
            data = b"OPBS\x01\x00\x00\x00" + data
        with pytest.raises(DecodeError):
            decode(data)


def test_ten_thousand_mutations_of_a_valid_binary_decode_or_raise_decode_errors():
    good = encode(assemble(EXAMPLE_SOURCE))
    rng = random.Random(2)
    decoded = 0
    for _ in range(N):
        data = bytearray(good)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.1:
            data = data[: rng.randrange(len(data))]
        try:
            program = decode(bytes(data))
        except DecodeError:
            continue
        decoded += 1
        assert encode(program) == bytes(data)  # whatever decodes is canonical
    assert decoded > 0  # some flips land in operand or base bits and stay valid


_TOKENS = [
    ".desc", "x", "y", "hbm", "sram", "bf16", "fp32", "i32", "[", "]", ",", "=", ":", "0", "7", "0x10",
    "-1", "1.5e3", "gemm", "gemm.xpu", "gemm.dma", "halt", "softmax.pim", "scale", "causal", "qpos",
    "launch", "top", "strides", ";c", "#", "@", "1e99", "99999999999999999999", "rope.pcu", "theta",
]


def test_ten_thousand_random_texts_raise_only_assembly_errors():
    rng = random.Random(3)
    accepted = 0
    for _ in range(N):
        lines = [" ".join(rng.choice(_TOKENS) for _ in range(rng.randrange(0, 9))) for _ in range(rng.randrange(1, 4))]
        if rng.random() < 0.3:
            lines.insert(0, ".desc x hbm 0 bf16 [4, 4]\n.desc y hbm 32 bf16 [4, 4]")
        text = "\n".join(lines)
        if rng.random() < 0.2:
            text = "".join(chr(rng.randrange(1, 0x250)) for _ in range(rng.randrange(0, 40)))
        try:
            assemble(text)
            accepted += 1
        except AsmError:
            pass
    assert accepted > 0


def test_every_single_word_truncation_of_a_valid_binary_is_rejected_with_its_offset():
    good = encode(assemble(EXAMPLE_SOURCE))
    for cut in range(0, len(good), WORD_B // 2):
        with pytest.raises(DecodeError) as e:
            decode(good[:cut])
        assert e.value.offset == cut
