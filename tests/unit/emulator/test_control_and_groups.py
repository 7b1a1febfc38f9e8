"""launch, signal, wait and halt; collectives over a device group."""

from __future__ import annotations

import numpy as np

from opbsim.emulator.datamem import DataMemory
from opbsim.emulator.functional import execute
from opbsim.isa import assemble
from opbsim.isa import numerics as N
from opbsim.isa.types import DType, Space

from .harness import Bench, group_run

COVERED = {"launch", "signal", "wait", "halt", "allreduce", "allgather", "alltoall"}

SRC = """
.desc a   hbm 0x0  fp32 [4]
.desc b   hbm 0x40 fp32 [4]
.desc c   hbm 0x80 fp32 [4]
    add.xpu     b, a, a
    signal.xpu  token=1
    wait.pim    token=1
    launch.xpu  body, count=2, pcus=0, pmus=0
    halt
    add.xpu     c, a, a          ; after the halt: never reached
body:
    mul.xpu     c, b, b
    add.xpu     c, c, a
"""


def _memory() -> DataMemory:
    mem = DataMemory({Space.HBM: 256})
    mem.store(assemble(SRC).descriptor("a"), np.array([1.0, 2.0, -3.0, 0.5], np.float32))
    return mem


def test_launch_runs_its_body_in_order_and_halt_stops_the_program():
    prog = assemble(SRC)
    mem = _memory()
    stats = execute(prog, mem)
    a = np.array([1.0, 2.0, -3.0, 0.5], np.float32)
    assert mem.load(prog.descriptor("c")).tolist() == ((a + a) * (a + a) + a).tolist()
    assert stats.instructions == 7  # add, signal, wait, launch, mul, add, halt
    assert stats.by_mnemonic["signal"].flops == 0 and stats.by_mnemonic["wait"].count == 1


def test_signal_and_wait_move_no_values():
    prog = assemble(SRC.replace("launch.xpu  body, count=2, pcus=0, pmus=0\n", ""))
    mem = _memory()
    execute(prog, mem)
    assert mem.load(prog.descriptor("b")).tolist() == [2.0, 4.0, -6.0, 1.0]


def test_running_past_the_last_instruction_ends_the_program():
    prog = assemble(".desc a hbm 0 fp32 [4]\n.desc b hbm 64 fp32 [4]\n    add.xpu b, a, a\n")
    mem = DataMemory({Space.HBM: 128})
    mem.store(prog.descriptor("a"), np.ones(4, np.float32))
    assert execute(prog, mem).instructions == 1


def _group(n: int, dtype: DType, shape, seed: int) -> list[Bench]:
    benches = []
    for d in range(n):
        b = Bench(np.random.default_rng(seed * 10 + d))
        b.tensor("src", dtype, shape)  # SPMD: one program, so one layout on every device
        b.tensor("dst", dtype if dtype is not DType.I32 else dtype, shape, fill=False)
        benches.append(b)
    return benches


def test_allreduce_sums_fp32_in_device_order_on_every_device():
    benches = _group(3, DType.FP32, (4, 5), 1)
    srcs = [b.memory().raw(next(d for d in b.descs if d.name == "src")).copy() for b in benches]
    mems = group_run(benches, "allreduce", {"dst": "dst", "src": "src", "devices": 3})
    want = N.store(N.allreduce(srcs), DType.FP32)
    for b, m in zip(benches, mems):
        assert np.array_equal(b.raw(m, "dst").view(np.uint32), want.view(np.uint32))


def test_allgather_gives_every_device_all_sources_in_device_order():
    benches = []
    for d in range(2):
        b = Bench(np.random.default_rng(d))
        b.tensor("src", DType.BF16, (3,))
        b.tensor("dst", DType.BF16, (2, 3), fill=False)
        benches.append(b)
    srcs = [b.memory().raw(b.descs[1]).copy() for b in benches]
    mems = group_run(benches, "allgather", {"dst": "dst", "src": "src", "devices": 2})
    for b, m in zip(benches, mems):
        assert np.array_equal(b.raw(m, "dst"), np.stack(srcs))


def test_alltoall_exchanges_slices_between_devices():
    benches = _group(3, DType.I32, (3, 2), 2)
    srcs = [b.memory().raw(b.descs[1]).copy() for b in benches]
    mems = group_run(benches, "alltoall", {"dst": "dst", "src": "src", "devices": 3})
    for i, (b, m) in enumerate(zip(benches, mems)):
        assert np.array_equal(b.raw(m, "dst"), N.alltoall(srcs)[i])
