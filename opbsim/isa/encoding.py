"""The binary form of a Program: a fixed header, fixed-size tables and 128-bit instruction words.

Layout (all little-endian):

    header        32 B   magic b"OPBS", version u16 (=1), reserved u16 (=0), descriptor count u32,
                         label count u32, instruction count u32, string-table bytes u32,
                         reserved u64 (=0)
    descriptors   48 B each: name offset u32, space u8, dtype u8, rank u8, reserved u8 (=0),
                         base u64 (bytes), shape 4 x u32, strides 4 x u32 (elements; unused = 0)
    labels         8 B each: name offset u32, instruction index u32
    instructions  16 B each: one 128-bit word, laid out by spec.py
    string table  the descriptor names then the label names, each NUL-terminated ASCII

The encoding is canonical: ``encode(decode(b)) == b`` for every ``b`` that decodes, and
``decode(encode(p)) == p`` for every Program. Anything else is a DecodeError naming the byte offset.
"""

from __future__ import annotations

import struct

from opbsim.errors import DecodeError, ProgramError
from opbsim.isa.program import Instruction, Label, Program
from opbsim.isa.spec import (
    BY_MNEMONIC,
    BY_OPCODE,
    OPCODE_HI,
    OPCODE_LO,
    UNIT_HI,
    UNIT_LO,
    FieldKind,
    OpSpec,
)
from opbsim.isa.types import MAX_RANK, Descriptor, DType, Space, Unit, is_identifier

__all__ = ["MAGIC", "VERSION", "WORD_B", "encode", "decode", "encode_instruction"]

MAGIC = b"OPBS"
VERSION = 1
WORD_B = 16
_HEADER = struct.Struct("<4sHHIIIIQ")
_DESC = struct.Struct(f"<IBBBBQ{MAX_RANK}I{MAX_RANK}I")
_LABEL = struct.Struct("<II")


def _bits(word: int, hi: int, lo: int) -> int:
    return (word >> lo) & ((1 << (hi - lo + 1)) - 1)


def _f32_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


def _bits_f32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _used_mask(spec: OpSpec) -> int:
    mask = ((1 << (OPCODE_HI - OPCODE_LO + 1)) - 1) << OPCODE_LO
    mask |= ((1 << (UNIT_HI - UNIT_LO + 1)) - 1) << UNIT_LO
    for f in spec.fields:
        mask |= ((1 << f.width) - 1) << f.lo
    return mask


_USED = {s.opcode: _used_mask(s) for s in BY_OPCODE.values()}


def encode_instruction(inst: Instruction) -> int:
    """The 128-bit word of a checked instruction."""
    spec = BY_MNEMONIC[inst.mnemonic]
    word = (spec.opcode << OPCODE_LO) | (int(inst.unit) << UNIT_LO)
    for f, v in zip(spec.fields, inst.operands):
        raw = _f32_bits(v) if f.kind is FieldKind.F32 else int(v)
        word |= raw << f.lo
    return word


def encode(program: Program) -> bytes:
    names = [d.name for d in program.descriptors] + [lb.name for lb in program.labels]
    offsets, strtab = _string_table(names)
    out = bytearray(
        _HEADER.pack(
            MAGIC, VERSION, 0, len(program.descriptors), len(program.labels),
            len(program.instructions), len(strtab), 0,
        )
    )
    for d, off in zip(program.descriptors, offsets):
        pad = (0,) * (MAX_RANK - len(d.shape))
        out += _DESC.pack(
            off, int(d.space), int(d.dtype), len(d.shape), 0, d.base_B,
            *d.shape, *pad, *d.strides_elems, *pad,
        )
    for lb, off in zip(program.labels, offsets[len(program.descriptors):]):
        out += _LABEL.pack(off, lb.index)
    for inst in program.instructions:
        out += encode_instruction(inst).to_bytes(WORD_B, "little")
    out += strtab
    return bytes(out)


def _string_table(names: list[str]) -> tuple[list[int], bytes]:
    offsets, pos, chunks = [], 0, []
    for name in names:
        offsets.append(pos)
        raw = name.encode("ascii") + b"\0"
        chunks.append(raw)
        pos += len(raw)
    return offsets, b"".join(chunks)


def decode(data: bytes) -> Program:
    """Decode a binary program; any malformation raises DecodeError with its byte offset."""
    if len(data) < _HEADER.size:
        raise DecodeError(f"truncated header: {len(data)} of {_HEADER.size} bytes", offset=len(data))
    magic, version, res16, n_desc, n_label, n_inst, strtab_B, res64 = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise DecodeError(f"bad magic {magic!r}, expected {MAGIC!r}", offset=0)
    if version != VERSION:
        raise DecodeError(f"unsupported version {version}, expected {VERSION}", offset=4)
    if res16 or res64:
        raise DecodeError("reserved header bits set", offset=6 if res16 else 24)
    desc_at = _HEADER.size
    label_at = desc_at + n_desc * _DESC.size
    inst_at = label_at + n_label * _LABEL.size
    str_at = inst_at + n_inst * WORD_B
    end = str_at + strtab_B
    if len(data) < end:
        raise DecodeError(f"truncated: the header declares {end} bytes, got {len(data)}", offset=len(data))
    if len(data) > end:
        raise DecodeError(f"{len(data) - end} trailing bytes after the string table", offset=end)
    names = _Strings(data, str_at, end)
    descriptors = tuple(_decode_descriptor(data, desc_at + i * _DESC.size, names) for i in range(n_desc))
    labels = tuple(_decode_label(data, label_at + i * _LABEL.size, names, n_inst) for i in range(n_label))
    names.check_consumed()
    instructions = tuple(
        _decode_word(data, inst_at + i * WORD_B, n_desc, n_inst) for i in range(n_inst)
    )
    try:
        return Program(descriptors, instructions, labels)
    except ProgramError as e:
        raise DecodeError(str(e), offset=desc_at) from None


class _Strings:
    """Reads the string table in order, enforcing the canonical layout."""

    def __init__(self, data: bytes, start: int, end: int):
        self.data, self.start, self.end, self.pos = data, start, end, start

    def take(self, offset: int, at: int) -> str:
        if self.start + offset != self.pos:
            raise DecodeError(f"name offset {offset} is not the next string ({self.pos - self.start})", offset=at)
        nul = self.data.find(b"\0", self.pos, self.end)
        if nul < 0:
            raise DecodeError("unterminated name in the string table", offset=self.pos)
        raw = self.data[self.pos:nul]
        try:
            name = raw.decode("ascii")
        except UnicodeDecodeError:
            name = ""
        if not is_identifier(name):
            raise DecodeError(f"name {raw!r} is not an identifier", offset=self.pos)
        self.pos = nul + 1
        return name

    def check_consumed(self) -> None:
        if self.pos != self.end:
            raise DecodeError(f"{self.end - self.pos} unused bytes in the string table", offset=self.pos)


def _decode_descriptor(data: bytes, at: int, names: _Strings) -> Descriptor:
    name_off, space, dtype, rank, reserved, base, *rest = _DESC.unpack_from(data, at)
    shape, strides = rest[:MAX_RANK], rest[MAX_RANK:]
    if space not in Space._value2member_map_:
        raise DecodeError(f"unknown address space code {space}", offset=at + 4)
    if dtype not in DType._value2member_map_:
        raise DecodeError(f"unknown dtype code {dtype}", offset=at + 5)
    if not 1 <= rank <= MAX_RANK:
        raise DecodeError(f"descriptor rank {rank} is outside 1..{MAX_RANK}", offset=at + 6)
    if reserved or any(shape[rank:]) or any(strides[rank:]):
        raise DecodeError("reserved descriptor bits set", offset=at + 7)
    name = names.take(name_off, at)
    try:
        return Descriptor(name, Space(space), base, DType(dtype), tuple(shape[:rank]), tuple(strides[:rank]))
    except ProgramError as e:
        raise DecodeError(str(e), offset=at) from None


def _decode_label(data: bytes, at: int, names: _Strings, n_inst: int) -> Label:
    name_off, index = _LABEL.unpack_from(data, at)
    if index > n_inst:
        raise DecodeError(f"label index {index} is past the end ({n_inst} instructions)", offset=at + 4)
    return Label(names.take(name_off, at), index)


def _decode_word(data: bytes, at: int, n_desc: int, n_inst: int) -> Instruction:
    word = int.from_bytes(data[at:at + WORD_B], "little")
    opcode = _bits(word, OPCODE_HI, OPCODE_LO)
    spec = BY_OPCODE.get(opcode)
    if spec is None:
        raise DecodeError(f"unknown opcode {opcode:#04x}", offset=at)
    if word & ~_USED[opcode]:
        raise DecodeError(f"reserved bits set in a {spec.mnemonic} word", offset=at)
    unit_code = _bits(word, UNIT_HI, UNIT_LO)
    if unit_code not in Unit._value2member_map_ or Unit(unit_code) not in spec.units:
        raise DecodeError(f"{spec.mnemonic} cannot run on unit code {unit_code}", offset=at)
    operands: list[int | float] = []
    for f in spec.fields:
        raw = _bits(word, f.hi, f.lo)
        if f.kind is FieldKind.F32:
            value = _bits_f32(raw)
            if value != value or value in (float("inf"), float("-inf")):
                raise DecodeError(f"{spec.mnemonic} operand {f.name} is not finite", offset=at)
            operands.append(value)
            continue
        if f.kind is FieldKind.DESC and raw >= n_desc:
            raise DecodeError(f"{spec.mnemonic} operand {f.name}: no descriptor {raw}", offset=at)
        if f.kind is FieldKind.LABEL and raw > n_inst:
            raise DecodeError(f"{spec.mnemonic} operand {f.name}: instruction {raw} past the end", offset=at)
        operands.append(raw)
    return Instruction(spec.mnemonic, Unit(unit_code), tuple(operands))
