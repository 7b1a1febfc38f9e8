"""The layer check's weights: generated in place into the emulated memory with the bits they have
when generated whole, read there from then on, never two on the same bytes; outputs compared as
bits."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.emulator import layer_check, seeded_bits
from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.faults import MemoryFault
from opbsim.emulator.seeded_weights import SeededWeights
from opbsim.isa.floatbits import bf16_widen
from opbsim.isa.types import Descriptor, DType, Space, row_major_strides


def _desc(name, base, shape, strides=None):
    return Descriptor(name, Space.HBM, base, DType.BF16, shape, strides or row_major_strides(shape))


def test_a_weight_placed_in_memory_has_the_bits_it_has_when_generated_whole():
    shapes = {"L0.w_o": (48, 40), "L0.attn_norm.weight": (40,), "L0.w_qkv": (40, 24)}
    w = SeededWeights(shapes, seed=4)
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




def test_a_single_flipped_bit_in_an_output_is_reported_as_a_mismatch(tmp_path, monkeypatch):
    from opbsim.hardware import get_device
    from opbsim.workloads import Stage, load_model

    from ..cli.test_cli_run import small_mixtral

    model = load_model(small_mixtral(tmp_path, layers=2))
    real = layer_check.execute

    def corrupting(program, memory):
        stats = real(program, memory)
        desc = next(d for d in program.descriptors if d.name == "L1.ffn_out")
        raw = memory.raw(desc).copy()
        raw.reshape(-1)[5] ^= np.uint16(1)
        memory.write_raw(desc, raw)
        return stats

    clean = layer_check.check_layer(model, 1, Stage.decode(4, 6), get_device("duplex"), "duplex")
    monkeypatch.setattr(layer_check, "execute", corrupting)
    flipped = layer_check.check_layer(model, 1, Stage.decode(4, 6), get_device("duplex"), "duplex")
    assert clean.bit_exact and flipped.mismatches == ("L1.ffn_out",)
