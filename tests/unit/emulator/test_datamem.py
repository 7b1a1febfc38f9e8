"""DataMemory: raw bytes per space, strided views, a record of written bytes."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from opbsim.emulator.datamem import DataMemory, overlaps_itself
from opbsim.emulator.faults import MemoryFault
from opbsim.isa.types import Descriptor, DType, Space


def _d(name, base, dtype, shape, strides=None, space=Space.HBM):
    from opbsim.isa.types import row_major_strides

    return Descriptor(name, space, base, dtype, tuple(shape), tuple(strides or row_major_strides(tuple(shape))))


def test_bf16_is_stored_as_two_byte_bit_patterns_rounded_to_nearest_even():
    mem = DataMemory({Space.HBM: 64})
    d = _d("x", 0, DType.BF16, (3,))
    mem.store(d, np.array([1.0, 1.00390625, np.nan]))  # 1 + 2^-8 is a tie: rounds to 1.0
    assert mem.raw(d).dtype == np.uint16
    assert mem.raw(d).tolist() == [0x3F80, 0x3F80, 0x7FC0]
    assert mem.raw(_d("bytes", 0, DType.BF16, (1,))).nbytes == 2


def test_a_strided_write_marks_only_the_bytes_it_names():
    mem = DataMemory({Space.HBM: 256})
    col = _d("col", 0, DType.FP32, (4,), (4,))  # column 0 of a [4, 4] matrix
    mem.store(col, np.arange(4.0))
    assert mem.load(col).tolist() == [0.0, 1.0, 2.0, 3.0]
    with pytest.raises(MemoryFault, match=r"^m: reads uninitialised hbm byte 0x4$"):
        mem.raw(_d("m", 0, DType.FP32, (4, 4)))


def test_a_broadcast_view_of_written_bytes_reads_fine():
    mem = DataMemory({Space.HBM: 64})
    mem.store(_d("v", 0, DType.FP32, (3,)), np.array([1.0, 2.0, 3.0]))
    assert mem.load(_d("b", 0, DType.FP32, (2, 3), (0, 1))).tolist() == [[1.0, 2.0, 3.0]] * 2


def test_views_outlive_the_memory_they_came_from():
    mem = DataMemory({Space.HBM: 64})
    d = _d("v", 0, DType.FP32, (4,))
    mem.store(d, np.arange(4.0))
    view = mem.raw(d)
    del mem
    gc.collect()
    assert view.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_large_capacity_costs_nothing_until_touched():
    mem = DataMemory({Space.HBM: 64 * 2**30, Space.DDR: 256 * 2**30})
    d = _d("far", 60 * 2**30, DType.BF16, (8,))
    mem.store(d, np.ones(8))
    assert mem.load(d).tolist() == [1.0] * 8
    assert mem.capacity_B(Space.DDR) == 256 * 2**30


def test_host_i32_stores_take_integers_only():
    mem = DataMemory({Space.HBM: 64})
    with pytest.raises(MemoryFault, match=r"^i: i32 data must be integers in -2\^31..2\^31-1$"):
        mem.store(_d("i", 0, DType.I32, (2,)), np.array([0.5, 1.0]))
    with pytest.raises(MemoryFault, match=r"^i: i32 data must be integers"):
        mem.store(_d("i", 0, DType.I32, (1,)), np.array([2**31]))


@pytest.mark.parametrize(("shape", "strides", "overlaps"), [
    ((4, 4), (4, 1), False), ((4, 4), (1, 4), False), ((2, 3), (0, 1), True), ((3, 3), (2, 1), True),
    ((1, 5), (0, 1), False), ((2, 2), (3, 1), False), ((4,), (0,), True),
])
def test_a_destination_overlaps_itself_unless_each_stride_passes_the_smaller_ones(shape, strides, overlaps):
    assert overlaps_itself(shape, strides) is overlaps


def test_a_fill_writes_the_view_in_place_and_marks_its_bytes_written():
    mem = DataMemory({Space.HBM: 256})
    d = _d("w", 32, DType.BF16, (4, 8))
    seen = []

    def write(view):
        seen.append(view.shape)
        view[...] = np.arange(32, dtype=np.uint16).reshape(4, 8)

    mem.fill(d, write)
    assert seen == [(4, 8)]
    assert mem.raw(d).ravel().tolist() == list(range(32))
    with pytest.raises(MemoryFault, match="uninitialised"):
        mem.raw(_d("next", 96, DType.BF16, (1,)))  # the bytes after the view stay unwritten


def test_a_fill_refuses_a_destination_that_overlaps_itself():
    mem = DataMemory({Space.HBM: 64})
    with pytest.raises(MemoryFault, match="overlap itself"):
        mem.fill(_d("w", 0, DType.BF16, (2, 4), (2, 1)), lambda view: None)
