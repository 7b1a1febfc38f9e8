"""How a timed program's wall clock divides: by op class, by what bounds each instruction
(compute, memory or communication), and the communication no other instruction hides.

Every moment is divided equally among the instructions running then; moments with none running
go to OTHER (by class) or ``idle`` (by bound). The parts of each split sum to the run's time.

A ``launch`` whose body spans several op classes (an SN40L dataflow kernel fusing the attention
block: norm, projections, attention) divides its share of each moment over those classes in
proportion to the modelled time of its body instructions of each class (``launch_class_shares``).
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.emulator.engine import RunStats
from opbsim.emulator.work import channel_bytes, compute_s, work_on
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Instruction, Program
from opbsim.isa.spec import Opcode, OpGroup
from opbsim.workloads.ops import OpClass

__all__ = ["split_by_class", "split_by_bound", "exposed_comm_s", "launch_class_shares", "modelled_s", "BOUNDS"]

BOUNDS = ("compute", "memory", "communication", "idle")


def _split(stats: RunStats, key: Callable[[int], dict[str, float]], keys: tuple[str, ...],
           idle: str) -> dict[str, float]:
    """``key(index)``: the keys an instruction's time goes to, with weights summing to 1."""
    events: list[tuple[float, int, dict[str, float]]] = []
    for iv in stats.timeline:
        if iv.end_s > iv.start_s:
            k = key(iv.index)
            events += [(iv.start_s, 1, k), (iv.end_s, -1, k)]
    events.sort(key=lambda e: (e[0], e[1]))
    out = dict.fromkeys(keys, 0.0)
    active = dict.fromkeys(keys, 0.0)
    running, last = 0, 0.0
    for t, delta, weights in events:
        if t > last:
            seg = t - last
            if running == 0:
                out[idle] += seg
            else:
                for c, n in active.items():
                    if n > 0:
                        out[c] += seg * n / running
            last = t
        for k, w in weights.items():
            active[k] += delta * w
        running += delta
    if stats.time_s > last:
        out[idle] += stats.time_s - last
    return out


def modelled_s(program: Program, device: DeviceSpec, inst: Instruction) -> tuple[float, float]:
    """(datapath s, slowest channel s) of ``inst`` alone on ``device`` at full rate."""
    work = work_on(device, program, inst)
    memory = max((n / (device.channel_bw_GBps(c) * 1e9) for c, n in channel_bytes(device, inst, work).items()),
                 default=0.0)
    return compute_s(device, inst, work), memory


def launch_class_shares(program: Program, device: DeviceSpec,
                        class_of_index: dict[int, OpClass]) -> dict[int, dict[OpClass, float]]:
    """Each ``launch``'s time split over the op classes of its body: each class's share is the
    modelled time (``modelled_s``: max of datapath and slowest channel, each instruction alone)
    of its body instructions over that of the whole body.

    A proportional split rather than the dominant class, because fused kernels are not dominated
    by one class: the SN40L kernel of Mixtral-8x7B's attention block (1 node x 4, batch 64, 1536
    tokens of context) is 81% attention, 17% FC, 2% other by modelled time in a decode stage and
    53% / 30% / 17% in a stage with a 1024-token prompt chunk; labelling it attention would misfile
    up to half its time. Its expert kernel is 98-99.9% MoE either way. The body's modelled times
    add up to within 13% of the kernel's engine time (69 vs 79 µs, 392 vs 400 µs decode)."""
    out: dict[int, dict[OpClass, float]] = {}
    for i, inst in enumerate(program.instructions):
        if inst.opcode is not Opcode.LAUNCH:
            continue
        start = int(inst["body"])
        busy: dict[OpClass, float] = {}
        for j in range(start, start + int(inst["count"])):
            c = class_of_index.get(j, OpClass.OTHER)
            busy[c] = busy.get(c, 0.0) + max(modelled_s(program, device, program.instructions[j]))
        total = sum(busy.values())
        if total > 0:
            out[i] = {c: t / total for c, t in busy.items() if t > 0}
    return out


def split_by_class(stats: RunStats, class_of_index: dict[int, OpClass],
                   launch_shares: dict[int, dict[OpClass, float]] | None = None) -> dict[OpClass, float]:
    """Wall-clock time of ``stats`` by op class (of the op each instruction comes from; unknown:
    OTHER); a launch in ``launch_shares`` (``launch_class_shares``) divides its time over its body's
    classes."""
    shares = {i: {c.value: w for c, w in s.items()} for i, s in (launch_shares or {}).items()}

    def key(i: int) -> dict[str, float]:
        return shares.get(i) or {class_of_index.get(i, OpClass.OTHER).value: 1.0}

    by = _split(stats, key, tuple(c.value for c in OpClass), OpClass.OTHER.value)
    return {OpClass(k): v for k, v in by.items()}


def split_by_bound(stats: RunStats, program: Program, device: DeviceSpec) -> dict[str, float]:
    """Wall-clock time of ``stats`` by what bounds each instruction at full rate: collectives are
    ``communication``; others ``compute`` when their datapath time is at least their slowest
    channel's time, else ``memory``."""
    bound: dict[int, dict[str, float]] = {}

    def key(index: int) -> dict[str, float]:
        if index not in bound:
            inst = program.instructions[index]
            if inst.spec.group is OpGroup.COLLECTIVE:
                bound[index] = {"communication": 1.0}
                return bound[index]
            body = [inst]
            if inst.opcode is Opcode.LAUNCH:  # a kernel: what its body does
                start = int(inst["body"])
                body = [program.instructions[i] for i in range(start, start + int(inst["count"]))]
            compute = memory = 0.0
            for b in body:
                c, m = modelled_s(program, device, b)
                compute, memory = compute + c, memory + m
            bound[index] = {"compute" if compute >= memory else "memory": 1.0}
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
