"""Read a program from bytes that hold either a binary (magic ``OPBS``) or assembly text."""

from __future__ import annotations

from opbsim.errors import InputError
from opbsim.isa.asm import assemble
from opbsim.isa.encoding import MAGIC, decode
from opbsim.isa.program import Program

__all__ = ["load_program"]


def load_program(data: bytes, name: str) -> Program:
    if data.startswith(MAGIC):
        return decode(data)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{name}: neither an opbsim binary nor UTF-8 assembly text (byte {e.start})") from None
    return assemble(text, file=name)
