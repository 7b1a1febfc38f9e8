"""The opbsim instruction set: one table (spec.py) drives encoding, assembly and docs."""

from opbsim.isa.asm import assemble, disassemble
from opbsim.isa.encoding import decode, encode
from opbsim.isa.program import Instruction, Label, Program
from opbsim.isa.spec import BY_MNEMONIC, BY_OPCODE, TABLE, Field, FieldKind, Opcode, OpSpec, Role
from opbsim.isa.types import Descriptor, DType, OpGroup, Space, Unit

__all__ = [
    "TABLE", "BY_MNEMONIC", "BY_OPCODE", "Opcode", "OpSpec", "Field", "FieldKind", "Role",
    "Unit", "Space", "DType", "OpGroup", "Descriptor",
    "Instruction", "Label", "Program",
    "encode", "decode", "assemble", "disassemble",
]
