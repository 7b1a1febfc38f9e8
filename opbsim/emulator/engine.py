"""The discrete-event timing engine: a Program on a DeviceSpec gives a timeline and statistics.

Model, in the order an instruction meets it:
- Instructions up to the first ``halt`` are dealt, in program order, to one in-order queue per
  unit; a unit runs one instruction at a time. A ``launch`` pays the unit's launch cost once and
  is followed in its queue by its body instructions, which pay none; on a unit with a kernel
  model (emulator/devices: the device model's, e.g. the SN40L dataflow pipeline) the launch and its body are one job
  instead, with the fixed cost and least streaming time the model gives.
- An instruction issues when the instructions of other units it depends on have finished (a
  scoreboard over the byte ranges of its operands: read-after-write, write-after-read,
  write-after-write), its ``wait`` token has a count, and, on a memory with exclusive sections,
  no other unit is streaming in a section it touches.
- It then pays its unit's fixed ``issue_ns`` if it is a kernel of its own (plus the collective's
  step latencies), and streams:
  its bytes cross the channels of its paths while its FLOPs run on the unit. Streams share each
  channel max-min fairly (progressive filling); an instruction never streams faster than its
  compute allows, so it lasts max(compute, bytes / bandwidth share) after issue, never less
  than its roofline bound.
Energy (energy.py): each instruction's work by mechanism, plus the device's static power over
the makespan. Values are never computed here; see functional.py.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from opbsim.emulator.devices import kernel_model
from opbsim.emulator.energy import EnergyParts, static_energy, work_energy
from opbsim.emulator.kernel_models import KernelModel
from opbsim.emulator.work import Work, achievable_s, channel_bytes, link_demand, regions_of, work_on
from opbsim.errors import InputError
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.hazards import Region, Scoreboard
from opbsim.isa.program import Instruction, Program
from opbsim.isa.spec import Opcode
from opbsim.isa.types import OpGroup, Space, Unit

__all__ = ["Interval", "RunStats", "run"]

_LINK = "link"  # the pseudo-channel collectives stream over
_DONE = 1e-12  # progress left below which a stream counts as finished


@dataclass(frozen=True, slots=True)
class Interval:
    """One instruction on the timeline: issued at ``start_s``, finished at ``end_s``."""

    index: int
    unit: Unit
    start_s: float
    end_s: float
    mnemonic: str
    group: OpGroup
    note: str


@dataclass(frozen=True, slots=True)
class RunStats:
    """Result of timing one program: makespan, per-unit busy time, traffic and energy.
    ``energy_J_by_group`` splits the instructions' (dynamic) energy by group; ``energy`` is all of
    it by component, with the static energy of the makespan."""

    device: str
    time_s: float
    busy_s_by_unit: tuple[tuple[Unit, float], ...]
    bytes_by_space: tuple[tuple[Space, int], ...]
    flops: int
    energy_J_by_group: tuple[tuple[OpGroup, float], ...]
    timeline: tuple[Interval, ...]
    energy: EnergyParts = EnergyParts()
    kernels_by_unit: tuple[tuple[Unit, int], ...] = ()  # kernels launched on each unit

    @property
    def energy_J(self) -> float:
        return self.energy.total_J

    def utilisation(self, unit: Unit) -> float:
        busy = dict(self.busy_s_by_unit).get(unit, 0.0)
        return busy / self.time_s if self.time_s > 0 else 0.0


@dataclass(slots=True)
class _Op:
    """Everything the engine needs of one instruction, computed once. ``seq`` is its position in
    the expanded stream (a body launched twice runs twice); ``index`` its place in the program."""

    seq: int
    index: int
    inst: Instruction
    work: Work
    demand_B: dict[str, int]  # bytes per channel
    total_B: int
    fixed_s: float  # issue overhead and collective latencies
    compute_s: float
    deps: tuple[int, ...]
    sections: frozenset[tuple[Space, int]]
    energy: EnergyParts
    kernel: bool = False  # a kernel of its own: it paid its unit's launch


@dataclass(slots=True)
class _Job:
    op: _Op
    start_s: float
    fixed_left_s: float
    progress_left: float = 1.0
    rate: float = 0.0  # progress per second while streaming


def _prepare(program: Program, device: DeviceSpec) -> list[_Op]:
    """The main stream up to the first ``halt``, each ``launch`` expanded into its body."""
    ops: list[_Op] = []
    live = Scoreboard()
    for index, inst in enumerate(program.instructions):
        if inst.opcode is Opcode.HALT:
            break
        if inst.opcode is not Opcode.LAUNCH:
            ops.append(_op(program, device, live, len(ops), index, inst, launched=False))
            continue
        model = kernel_model(device, inst.unit)
        if model is not None:
            ops.append(_kernel(program, device, live, len(ops), index, inst, model))
            continue
        ops.append(_op(program, device, live, len(ops), index, inst, launched=False))
        body = [(i, program.instructions[i]) for i in _body(program, index, inst)]
        works = [work_on(device, program, b) for _, b in body]
        kernel_B = sum(dict(w.bytes_by_space).get(Space.HBM, 0) for w in works
                       if w.attention is not None and w.attention.phase == "decode")
        for (body_index, b), work in zip(body, works):
            ops.append(_op(program, device, live, len(ops), body_index, b, launched=True, work=work,
                           kernel_hbm_B=kernel_B))
    return ops


def _body(program: Program, index: int, launch: Instruction) -> range:
    start, count = int(launch["body"]), int(launch["count"])
    where = f"instruction {index} (launch.{launch.unit.name.lower()})"
    if count < 1 or start + count > len(program.instructions):
        raise InputError(f"{where}: body of {count} instructions at {start} runs past the program")
    for i in range(start, start + count):
        inst = program.instructions[i]
        if inst.opcode in (Opcode.LAUNCH, Opcode.HALT) or inst.unit is not launch.unit:
            raise InputError(f"{where}: body instruction {i} ({inst.mnemonic}.{inst.unit.name.lower()}) "
                             f"is not a {launch.unit.name.lower()} instruction that can run in a kernel")
    return range(start, start + count)


def _op(program: Program, device: DeviceSpec, live: Scoreboard, seq: int, index: int, inst: Instruction, *,
        launched: bool, work: Work | None = None, kernel_hbm_B: int = 0) -> _Op:
    """One instruction's demands; a launched body instruction pays no launch of its own.
    ``kernel_hbm_B``: the HBM bytes of the decode-attention instructions of its kernel (achievable_s)."""
    if inst.unit is not Unit.CTRL:
        device.compute(inst.unit)  # the device must have the unit
    work = work_on(device, program, inst) if work is None else work
    demand = channel_bytes(device, inst, work)
    link_latency_s, link_B = link_demand(device, work)
    if link_B:
        demand[_LINK] = demand.get(_LINK, 0) + link_B
    regions = regions_of(program, inst)
    pays_launch = inst.opcode is Opcode.LAUNCH or (
        not launched and bool(demand or work.matrix_flops or work.vector_flops))
    issue_s = device.compute(inst.unit).issue_ns * 1e-9 if pays_launch else 0.0
    return _Op(
        seq=seq, index=index, inst=inst, work=work, demand_B=demand, total_B=sum(demand.values()),
        fixed_s=issue_s + link_latency_s,
        compute_s=achievable_s(device, inst, work, kernel_hbm_B=kernel_hbm_B), deps=live.add(regions, seq, inst.unit),
        sections=_sections(device, regions), energy=work_energy(device, inst.unit, work), kernel=pays_launch,
    )


def _kernel(program: Program, device: DeviceSpec, live: Scoreboard, seq: int, index: int, launch: Instruction,
            model: KernelModel) -> _Op:
    """A launch timed by its unit's kernel model: one job holding the whole body's work."""
    device.compute(launch.unit)
    body = tuple(program.instructions[i] for i in _body(program, index, launch))
    works = tuple(work_on(device, program, inst) for inst in body)
    by_space: dict[Space, int] = {}
    for w in works:
        for space, n in w.bytes_by_space:
            by_space[space] = by_space.get(space, 0) + n
    work = Work(matrix_flops=sum(w.matrix_flops for w in works), vector_flops=sum(w.vector_flops for w in works),
                bytes_by_space=tuple(sorted(by_space.items())), streams=tuple(st for w in works for st in w.streams))
    energy = sum((work_energy(device, launch.unit, w) for w in works), EnergyParts())
    cost = model(device, launch, body, works)
    demand = channel_bytes(device, launch, work)
    link_B = sum(link_demand(device, w)[1] for w in works)
    if link_B:
        demand[_LINK] = demand.get(_LINK, 0) + link_B
    regions = tuple(r for inst in body for r in regions_of(program, inst))
    return _Op(seq=seq, index=index, inst=launch, work=work, demand_B=demand, total_B=sum(demand.values()),
               fixed_s=cost.fixed_s, compute_s=cost.compute_s, deps=live.add(regions, seq, launch.unit),
               sections=_sections(device, regions), energy=energy, kernel=True)


def _sections(device: DeviceSpec, regions: tuple[Region, ...]) -> frozenset[tuple[Space, int]]:
    out = set()
    for r in regions:
        mem = device.memory(r.space)
        if mem.exclusive_sections and r.hi_B - r.lo_B > mem.buffered_B:
            first, last = mem.section_of(r.lo_B), mem.section_of(max(r.lo_B, r.hi_B - 1))
            out.update((r.space, s) for s in range(first, last + 1))
    return frozenset(out)


def _fair_rates(jobs: list[_Job], capacity_Bps: dict[str, float]) -> None:
    """Max-min fair byte rates by progressive filling; sets each streaming job's ``rate``.

    Every unfrozen job's total byte rate rises at the same level until a channel saturates
    (its jobs freeze) or a job reaches its compute cap (it freezes).
    """
    streaming = [j for j in jobs if j.fixed_left_s <= 0 and j.op.total_B > 0]
    unfrozen = set(range(len(streaming)))
    used = dict.fromkeys(capacity_Bps, 0.0)
    while unfrozen:
        best, freeze = math.inf, ()
        for c in {c for i in unfrozen for c in streaming[i].op.demand_B}:
            users = [i for i in unfrozen if c in streaming[i].op.demand_B]
            weight = sum(streaming[i].op.demand_B[c] / streaming[i].op.total_B for i in users)
            level = max(capacity_Bps[c] - used[c], 0.0) / weight
            if level < best:
                best, freeze = level, tuple(users)
        for i in sorted(unfrozen):
            op = streaming[i].op
            if op.compute_s > 0 and op.total_B / op.compute_s < best:
                best, freeze = op.total_B / op.compute_s, (i,)
        for i in freeze:
            job = streaming[i]
            job.rate = best / job.op.total_B
            for c, n in job.op.demand_B.items():
                used[c] += n * job.rate
            unfrozen.discard(i)


def run(program: Program, device: DeviceSpec) -> RunStats:
    """Time ``program`` on ``device``. Deterministic: the same inputs give the same result."""
    ops = _prepare(program, device)
    capacity = {c.name: c.bw_GBps * 1e9 for c in device.channels} | {_LINK: device.link_GBps * 1e9}
    queues: dict[Unit, deque[_Op]] = {}
    for op in ops:
        queues.setdefault(op.inst.unit, deque()).append(op)
    done: dict[int, float] = {}
    tokens: dict[int, int] = {}
    active: dict[Unit, _Job] = {}
    timeline: list[Interval] = []
    now = 0.0

    def finish(job: _Job) -> None:
        op = job.op
        done[op.seq] = now
        if op.inst.opcode is Opcode.SIGNAL:
            tokens[int(op.inst["token"])] = tokens.get(int(op.inst["token"]), 0) + 1
        timeline.append(Interval(op.index, op.inst.unit, job.start_s, now, op.inst.mnemonic, op.inst.spec.group,
                                 op.inst.note))

    def ready(op: _Op) -> bool:
        if any(d not in done for d in op.deps):
            return False
        if op.inst.opcode is Opcode.WAIT and tokens.get(int(op.inst["token"]), 0) <= 0:
            return False
        return not any(op.sections & j.op.sections for u, j in active.items() if u is not op.inst.unit)

    while True:
        issued = True
        while issued:
            issued = False
            for unit, queue in queues.items():
                if unit in active or not queue or not ready(queue[0]):
                    continue
                op = queue.popleft()
                if op.inst.opcode is Opcode.WAIT:
                    tokens[int(op.inst["token"])] -= 1
                job = _Job(op, now, op.fixed_s)
                if op.fixed_s <= 0 and op.total_B == 0 and op.compute_s <= 0:
                    finish(job)
                else:
                    active[unit] = job
                issued = True
        if not active:
            break
        _fair_rates(list(active.values()), capacity)
        step = min(_time_to_next(job) for job in active.values())
        now += step
        for unit in list(active):
            job = active[unit]
            _advance(job, step)
            if job.fixed_left_s <= 0 and job.progress_left <= _DONE:
                finish(job)
                del active[unit]
    stuck = [q[0] for q in queues.values() if q]
    if stuck:
        op = stuck[0]
        raise InputError(f"deadlock: instruction {op.index} ({op.inst.mnemonic}.{op.inst.unit.name.lower()}) "
                         f"can never issue: a wait without a matching signal")
    return _stats(device, ops, timeline, now)


def _time_to_next(job: _Job) -> float:
    if job.fixed_left_s > 0:
        return job.fixed_left_s
    if job.op.total_B == 0:
        return job.op.compute_s * job.progress_left
    return job.progress_left / job.rate


def _advance(job: _Job, step: float) -> None:
    if job.fixed_left_s > 0:
        job.fixed_left_s = max(job.fixed_left_s - step, 0.0)
        return
    if job.op.total_B == 0:
        job.progress_left = job.progress_left - step / job.op.compute_s if job.op.compute_s > 0 else 0.0
    else:
        job.progress_left -= step * job.rate
    if job.progress_left < _DONE:
        job.progress_left = 0.0


def _stats(device: DeviceSpec, ops: list[_Op], timeline: list[Interval], end_s: float) -> RunStats:
    busy: dict[Unit, float] = {}
    for iv in timeline:
        busy[iv.unit] = busy.get(iv.unit, 0.0) + (iv.end_s - iv.start_s)
    traffic: dict[Space, int] = {}
    energy: dict[OpGroup, float] = {}
    parts = static_energy(device, end_s)
    flops = 0
    kernels: dict[Unit, int] = {}
    for op in ops:
        if op.kernel:
            kernels[op.inst.unit] = kernels.get(op.inst.unit, 0) + 1
        flops += op.work.matrix_flops + op.work.vector_flops
        for space, n in op.work.bytes_by_space:
            traffic[space] = traffic.get(space, 0) + n
        group = op.inst.spec.group
        energy[group] = energy.get(group, 0.0) + op.energy.total_J
        parts = parts + op.energy
    return RunStats(
        device=device.name,
        time_s=end_s,
        busy_s_by_unit=tuple(sorted(busy.items())),
        bytes_by_space=tuple(sorted(traffic.items())),
        flops=flops,
        energy_J_by_group=tuple((g, energy[g]) for g in OpGroup if g in energy),
        timeline=tuple(sorted(timeline, key=lambda iv: (iv.start_s, iv.index))),
        energy=parts,
        kernels_by_unit=tuple(sorted(kernels.items())),
    )
