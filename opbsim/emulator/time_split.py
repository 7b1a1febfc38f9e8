"""How a timed program's wall clock divides: by op class, by what bounds each instruction
(compute, memory or communication), and the communication no other instruction hides.

Every moment is divided equally among the instructions running then; moments with none running
go to OTHER (by class) or ``idle`` (by bound). The parts of each split sum to the run's time.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.emulator.engine import RunStats
from opbsim.emulator.work import channel_bytes, compute_s, work_of
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Program
from opbsim.isa.spec import OpGroup
from opbsim.workloads.ops import OpClass

__all__ = ["split_by_class", "split_by_bound", "exposed_comm_s", "BOUNDS"]

BOUNDS = ("compute", "memory", "communication", "idle")


def _split(stats: RunStats, key: Callable[[int], str], keys: tuple[str, ...], idle: str) -> dict[str, float]:
    events: list[tuple[float, int, str]] = []
    for iv in stats.timeline:
        if iv.end_s > iv.start_s:
            k = key(iv.index)
            events += [(iv.start_s, 1, k), (iv.end_s, -1, k)]
    events.sort(key=lambda e: (e[0], e[1]))
    out = dict.fromkeys(keys, 0.0)
    active = dict.fromkeys(keys, 0)
    running, last = 0, 0.0
    for t, delta, k in events:
        if t > last:
            seg = t - last
            if running == 0:
                out[idle] += seg
            else:
                for c, n in active.items():
                    if n:
                        out[c] += seg * n / running
            last = t
        active[k] += delta
        running += delta
    if stats.time_s > last:
        out[idle] += stats.time_s - last
    return out


def split_by_class(stats: RunStats, class_of_index: dict[int, OpClass]) -> dict[OpClass, float]:
    """Wall-clock time of ``stats`` by op class (of the op each instruction comes from; unknown:
    OTHER)."""
    by = _split(stats, lambda i: class_of_index.get(i, OpClass.OTHER).value, tuple(c.value for c in OpClass),
                OpClass.OTHER.value)
    return {OpClass(k): v for k, v in by.items()}


def split_by_bound(stats: RunStats, program: Program, device: DeviceSpec) -> dict[str, float]:
    """Wall-clock time of ``stats`` by what bounds each instruction at full rate: collectives are
    ``communication``; others ``compute`` when their datapath time is at least their slowest
    channel's time, else ``memory``."""
    bound: dict[int, str] = {}

    def key(index: int) -> str:
        if index not in bound:
            inst = program.instructions[index]
            if inst.spec.group is OpGroup.COLLECTIVE:
                bound[index] = "communication"
                return bound[index]
            body = [inst]
            if inst.mnemonic == "launch":  # a kernel: what its body does
                start = int(inst["body"])
                body = [program.instructions[i] for i in range(start, start + int(inst["count"]))]
            busy = {"compute": 0.0, "memory": 0.0}
            for b in body:
                work = work_of(program, b)
                busy["compute"] += compute_s(device, b, work)
                busy["memory"] += max((n / (device.channel_bw_GBps(c) * 1e9)
                                       for c, n in channel_bytes(device, b, work).items()), default=0.0)
            bound[index] = "compute" if busy["compute"] >= busy["memory"] else "memory"
        return bound[index]

    return _split(stats, key, BOUNDS, "idle")


def exposed_comm_s(stats: RunStats, class_of_index: dict[int, OpClass]) -> float:
    """Wall-clock time of ``stats`` during which only communication instructions run."""
    events: list[tuple[float, int, bool]] = []
    for iv in stats.timeline:
        if iv.end_s > iv.start_s:
            comm = class_of_index.get(iv.index) is OpClass.COMM
            events += [(iv.start_s, 1, comm), (iv.end_s, -1, comm)]
    events.sort(key=lambda e: (e[0], e[1]))
    comm_n = other_n = 0
    last = out = 0.0
    for t, delta, comm in events:
        if comm_n and not other_n:
            out += t - last
        last = t
        if comm:
            comm_n += delta
        else:
            other_n += delta
    return out
