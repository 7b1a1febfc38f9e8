"""Faults stop execution with ExecutionError (an InputError) naming the instruction by index and
assembly text; the messages are pinned here."""

from __future__ import annotations

import numpy as np
import pytest

from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.faults import ExecutionError, MemoryFault
from opbsim.emulator.functional import execute, execute_group
from opbsim.errors import InputError
from opbsim.isa import assemble
from opbsim.isa.types import Descriptor, DType, Space

HEAD = """
.desc a    hbm  0x0   bf16 [2, 4]
.desc b    hbm  0x40  bf16 [4, 3]
.desc c    hbm  0x80  fp32 [2, 3]
.desc i    hbm  0xc0  i32  [2]
.desc w    hbm  0x100 fp32 [2]
.desc f4   hbm  0x140 fp32 [2, 4]
.desc d    hbm  0x180 bf16 [2, 3]
"""


def _run(body: str, init=("a", "b", "i", "w", "f4"), idx=(0, 1), cap=512) -> None:
    prog = assemble(HEAD + body)
    mem = DataMemory({Space.HBM: cap})
    for name in init:
        d = prog.descriptor(name)
        if d.dtype is DType.I32:
            mem.store(d, np.array(idx))
        else:
            mem.store(d, np.ones(d.shape, np.float32))
    execute(prog, mem)


def _fails(body: str, message: str, **kw) -> ExecutionError:
    with pytest.raises(ExecutionError) as info:
        _run(body, **kw)
    assert str(info.value) == message
    assert isinstance(info.value, InputError)
    return info.value


def test_reading_memory_never_written_names_the_instruction_and_the_first_byte():
    e = _fails("    gemm.xpu c, a, b\n", "instruction 0 (gemm.xpu c, a, b): b: reads uninitialised hbm byte 0x40",
               init=("a",))
    assert e.index == 0 and e.text == "gemm.xpu c, a, b"


def test_a_descriptor_outside_its_space_is_a_fault():
    _fails("    add.xpu c, c, c\n", "instruction 0 (add.xpu c, c, c): c: bytes 0x80..0x98 are outside hbm "
           "(capacity 0x90 bytes)", init=(), cap=0x90)


def test_a_space_the_device_does_not_have_is_a_fault():
    prog = assemble(".desc s sram 0 fp32 [2]\n    exp.xpu s, s\n")
    with pytest.raises(ExecutionError, match=r"^instruction 0 \(exp.xpu s, s\): s: this device has no sram memory$"):
        execute(prog, DataMemory({Space.HBM: 64}))


def test_gemm_operands_must_be_bf16():
    _fails("    gemm.xpu c, f4, b\n", "instruction 0 (gemm.xpu c, f4, b): operand a (f4) is fp32, expected bf16")


def test_gemm_inner_dimensions_must_agree():
    _fails("    gemm.xpu c, a, a\n",
           "instruction 0 (gemm.xpu c, a, a): operand b (a) has shape [2, 4], expected [4] and N columns "
           "(a is [2, 4])")


def test_gemm_acc_accumulates_into_fp32_only():
    _fails("    gemm_acc.xpu d, a, b\n", "instruction 0 (gemm_acc.xpu d, a, b): operand dst (d) is bf16, expected fp32")


def test_elementwise_shapes_must_be_equal():
    _fails("    add.xpu c, a, a\n",
           "instruction 0 (add.xpu c, a, a): operand dst (c) has shape [2, 3], expected [2, 4]")


def test_integer_operands_are_refused_by_arithmetic():
    _fails("    exp.xpu w, i\n", "instruction 0 (exp.xpu w, i): operand src (i) is i32, expected bf16 or fp32")


def test_an_index_out_of_range_names_its_position_and_value():
    _fails("    gather.xpu f4, f4, i\n",
           "instruction 0 (gather.xpu f4, f4, i): operand idx (i) entry [1] is 7, outside 0..1", idx=(0, 7))


def test_scatter_add_needs_an_fp32_accumulator():
    _fails("    scatter_add.xpu a, a, i, w\n",
           "instruction 0 (scatter_add.xpu a, a, i, w): operand dst (a) is bf16, expected fp32")


def test_topk_k_must_fit_the_last_axis():
    _fails("    topk.xpu f4, i, f4, k=5\n", "instruction 0 (topk.xpu f4, i, f4, k=5): k=5 is outside 1..4 "
           "(the last axis of src (f4))")


@pytest.mark.parametrize("width,freq,message", [
    (3, "fp32 [1]", r"rope rotates halves$"),
    (4, "fp32 [4]", r"^instruction 0 \(rope.xpu x, x, p, f, mscale=1.0\): operand freq \(f\) has shape \[4\], "
                    r"expected \[2\]$"),
    (4, "bf16 [2]", r"^instruction 0 \(rope.xpu x, x, p, f, mscale=1.0\): operand freq \(f\) is bf16, expected fp32$"),
])
def test_rope_needs_an_even_last_axis_and_an_fp32_table_of_half_of_it(width, freq, message):
    prog_text = (f".desc x hbm 0 fp32 [2, {width}]\n.desc p hbm 64 i32 [2]\n.desc f hbm 96 {freq}\n"
                 "    rope.xpu x, x, p, f, mscale=1.0\n")
    prog = assemble(prog_text)
    mem = DataMemory({Space.HBM: 128})
    mem.store(prog.descriptor("x"), np.ones((2, width)))
    mem.store(prog.descriptor("p"), np.array([0, 1]))
    with pytest.raises(ExecutionError, match=message):
        execute(prog, mem)


def test_a_collective_on_a_single_device_is_refused():
    _fails("    allreduce.dma c, c, devices=2\n",
           "instruction 0 (allreduce.dma c, c, devices=2): allreduce is a collective: run the program on a device "
           "group (execute_group)", init=())


def test_a_collective_whose_group_size_differs_from_the_devices_field_is_refused():
    prog = assemble(HEAD + "    allreduce.dma f4, f4, devices=3\n")
    mems = [DataMemory({Space.HBM: 512}) for _ in range(2)]
    with pytest.raises(ExecutionError, match=r"devices=3 but the group has 2 devices$"):
        execute_group(prog, mems)


def test_a_fault_on_one_device_of_a_group_names_the_device():
    prog = assemble(HEAD + "    exp.xpu f4, f4\n")
    mems = [DataMemory({Space.HBM: 512}) for _ in range(2)]
    mems[0].store(prog.descriptor("f4"), np.ones((2, 4)))
    with pytest.raises(ExecutionError, match=r"\): device 1: f4: reads uninitialised hbm byte 0x140$"):
        execute_group(prog, mems)


def test_a_launch_body_may_not_hold_a_launch_or_a_halt():
    body = "    launch.xpu k, count=2, pcus=0, pmus=0\nk:\n    exp.xpu f4, f4\n    halt\n"
    _fails(body, "instruction 0 (launch.xpu k, count=2, pcus=0, pmus=0, hw=0, sync=0): body instruction 2 (halt) "
           "is a halt; a launch body holds no launch or halt")


def test_a_destination_that_overlaps_itself_is_refused():
    prog = assemble(".desc x hbm 0 fp32 [4]\n.desc y hbm 0 fp32 [2, 4] strides=[0, 1]\n    exp.xpu y, y\n")
    mem = DataMemory({Space.HBM: 64})
    mem.store(prog.descriptor("x"), np.ones(4))
    with pytest.raises(ExecutionError, match=r"y: a destination must not overlap itself \(shape \[2, 4\], "
                                             r"strides \[0, 1\]\)$"):
        execute(prog, mem)


def test_a_misaligned_base_is_a_fault():
    mem = DataMemory({Space.HBM: 64})
    with pytest.raises(MemoryFault, match=r"^x: base 0x2 is not a multiple of 4 bytes \(fp32\)$"):
        mem.store(Descriptor("x", Space.HBM, 2, DType.FP32, (2,), (1,)), np.ones(2))


def test_a_negative_capacity_is_refused():
    with pytest.raises(MemoryFault, match=r"^capacity of hbm must be a byte count >= 0, got -1$"):
        DataMemory({Space.HBM: -1})
