"""The layer check's weights: generated in place into the emulated memory with the bits they have
when generated whole, read there from then on, never two on the same bytes; outputs compared as
bits."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.emulator import layer_check, seeded_bits
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.faults import MemoryFault
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.types import Descriptor, DType, Space, row_major_strides


def _desc(name, base, shape, strides=None):
    return Descriptor(name, Space.HBM, base, DType.BF16, shape, strides or row_major_strides(shape))


def test_a_weight_placed_in_memory_has_the_bits_it_has_when_generated_whole():
    shapes = {"L0.w_o": (48, 40), "L0.attn_norm.weight": (40,), "L0.w_qkv": (40, 24)}
    w = layer_check._Weights(shapes, seed=4)
    held = w.bits("L0.w_qkv").copy()  # generated on first use and held
    memory = DataMemory({Space.HBM: 1 << 16})
    w.place("L0.w_o", memory, _desc("w_o", 0, (48, 40)))  # generated in place
    w.place("L0.attn_norm.weight", memory, _desc("g", 8192, (40,)))
    w.place("L0.w_qkv", memory, _desc("w_qkv", 16384, (40, 24), (48, 1)))  # strided: written whole
    for name, shape in shapes.items():
        assert np.array_equal(w.bits(name), seeded_bits.weight_bits(4, name, shape))
    assert np.array_equal(w.bits("L0.w_qkv"), held)
    assert np.array_equal(memory.raw(_desc("w_o", 0, (48, 40))), w.bits("L0.w_o"))  # read from memory
    assert np.array_equal(w["L0.w_o"], bf16_widen(w.bits("L0.w_o")))


def test_two_weights_on_the_same_bytes_are_refused():
    apart = {"a": _desc("a", 0, (4, 8)), "b": _desc("b", 64, (8,))}
    layer_check._check_apart(apart)
    with pytest.raises(MemoryFault, match="places weights a and b on the same bytes"):
        layer_check._check_apart({"a": _desc("a", 0, (4, 8)), "b": _desc("b", 62, (8,))})


def test_outputs_compare_as_bits_against_exact_bf16_values():
    bits = np.array([[0x3F80, 0x8000], [0x7FC0, 0x0001]], np.uint16)
    values = bf16_widen(bits)
    assert layer_check._same_bits(bits, values)
    other = bits.copy()
    other[1, 1] = 0x0002
    assert not layer_check._same_bits(other, values)
    assert not layer_check._same_bits(bits, values + np.float32(2.0**-20))  # not a bf16 value: low bits set
    assert not layer_check._same_bits(bits[:1], values)
