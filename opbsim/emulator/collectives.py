"""Collectives over a device group: one handler sees the same instruction on every device.

A group runs one program SPMD in lockstep (see functional.execute_group); ``devices`` of the
instruction must equal the group's size. allreduce adds the fp32 contributions in device order
0..n-1 from +0.0 and stores the sum into every device's dst (rounded to its dtype); allgather
and alltoall move bits: allgather's dst[i] is device i's src on every device, and alltoall's
dst slice j on device i is device j's src slice i.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from opbsim.emulator.context import FLOATS, OpContext
from opbsim.emulator.faults import OperandError
from opbsim.errors import InputError
from opbsim.isa import numerics
from opbsim.isa.spec import Opcode

__all__ = ["GROUP_HANDLERS", "GroupHandler"]

T = TypeVar("T")
GroupHandler = Callable[[Sequence[OpContext]], int]


def _check_group(ctxs: Sequence[OpContext]) -> None:
    n = int(ctxs[0].imm("devices"))
    if n != len(ctxs):
        raise OperandError(f"devices={n} but the group has {len(ctxs)} devices")


def _each(ctxs: Sequence[OpContext], fn: Callable[[OpContext], T]) -> list[T]:
    """fn on every device in order; an error names the device it happened on."""
    out = []
    for d, ctx in enumerate(ctxs):
        try:
            out.append(fn(ctx))
        except InputError as e:
            raise type(e)(f"device {d}: {e}") from None
    return out


def _allreduce(ctxs: Sequence[OpContext]) -> int:
    _check_group(ctxs)

    def check(ctx: OpContext) -> None:
        src = ctx.need_dtype("src", *FLOATS)
        ctx.need_dtype("dst", *FLOATS)
        ctx.need_shape("dst", src.shape)

    _each(ctxs, check)
    total = numerics.allreduce(_each(ctxs, lambda ctx: ctx.values("src")))
    _each(ctxs, lambda ctx: ctx.write("dst", total))
    return total.size * (len(ctxs) - 1)


def _alltoall(ctxs: Sequence[OpContext]) -> int:
    _check_group(ctxs)
    n = len(ctxs)

    def check(ctx: OpContext) -> None:
        src = ctx.desc("src")
        if src.shape[0] != n:
            raise OperandError(
                f"operand src ({src.name}) has {src.shape[0]} leading slices, expected {n} (one per device)"
            )
        ctx.need_shape("dst", src.shape)
        ctx.need_same_dtype("dst", "src")

    _each(ctxs, check)
    received = numerics.alltoall(_each(ctxs, lambda ctx: ctx.raw("src").copy()))
    slices = iter(received)
    _each(ctxs, lambda ctx: ctx.write_raw("dst", next(slices)))
    return 0


def _allgather(ctxs: Sequence[OpContext]) -> int:
    _check_group(ctxs)
    n = len(ctxs)

    def check(ctx: OpContext) -> None:
        ctx.need_shape("dst", (n,) + ctx.desc("src").shape)
        ctx.need_same_dtype("dst", "src")

    _each(ctxs, check)
    gathered = numerics.allgather(_each(ctxs, lambda ctx: ctx.raw("src").copy()))
    _each(ctxs, lambda ctx: ctx.write_raw("dst", gathered))
    return 0


GROUP_HANDLERS: dict[Opcode, GroupHandler] = {
    Opcode.ALLREDUCE: _allreduce, Opcode.ALLGATHER: _allgather, Opcode.ALLTOALL: _alltoall,
}
