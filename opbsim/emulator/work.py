"""What each instruction asks of the hardware (FLOPs, bytes per address space, link bytes), and
the roofline bound no timing model may beat.

Vector and fused instructions count fp32 operations per element as the ISA table lists them
(``OpSpec.ops_per_element``, gathered in ``VECTOR_OPS_PER_ELEMENT``); gathers and scatters move
only the rows they index. Every operand's traffic is also an access stream (access.py: its layout,
read or write), from which the DRAM rows it opens follow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace

from opbsim.emulator.access import Stream, row_stream, view_stream
from opbsim.errors import InputError
from opbsim.hardware.collectives import Collective, Plan, plan
from opbsim.hardware.interconnect import Interconnect
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.hazards import Region
from opbsim.isa.program import AttentionPart, Instruction, Program
from opbsim.isa.spec import TABLE, Opcode, Role
from opbsim.isa.types import Descriptor, DType, OpGroup, Space, Unit

__all__ = ["Work", "work_of", "work_on", "fused_attention", "regions_of", "VECTOR_OPS_PER_ELEMENT", "roofline_bound_s",
           "channel_bytes", "link_plan", "link_demand", "by_space", "achievable_s"]

VECTOR_OPS_PER_ELEMENT: dict[Opcode, int] = {s.opcode: s.ops_per_element for s in TABLE if s.ops_per_element}


@dataclass(frozen=True, slots=True)
class Work:
    """Demands of one instruction. ``bytes_by_space`` counts reads plus writes (the sum of
    ``streams`` per space); ``collective`` is (kind, size in bytes as nccl-tests counts it, devices
    in the group) for a collective."""

    matrix_flops: int = 0
    vector_flops: int = 0
    bytes_by_space: tuple[tuple[Space, int], ...] = ()
    collective: tuple[Collective, int, int] | None = None
    streams: tuple[Stream, ...] = ()
    gemm_rows: int = 0  # a GEMM's output rows (M), what its tensor-core tiles are padded by
    grouped_gemm: bool = False  # one expert's GEMM of a fused-MoE (grouped GEMM) kernel
    attention: AttentionPart | None = None  # the part of an attention kernel it computes
    fp8_matrix: bool = False  # a gemm_fp8 of two e4m3 operands: the unit's fp8 matrix peak

    @property
    def total_B(self) -> int:
        return sum(b for _, b in self.bytes_by_space)


def by_space(streams: tuple[Stream, ...]) -> tuple[tuple[Space, int], ...]:
    """Bytes per address space of ``streams``."""
    by: dict[Space, int] = {}
    for st in streams:
        by[st.space] = by.get(st.space, 0) + st.nbytes
    return tuple(sorted(by.items()))


def _work(streams: list[Stream] | tuple[Stream, ...], **kw) -> Work:
    streams = tuple(streams)
    return Work(bytes_by_space=by_space(streams), streams=streams, **kw)


def _all(program: Program, inst: Instruction, skip: frozenset[str] = frozenset()) -> list[Stream]:
    """Every distinct descriptor operand moved once: an input read, an output written, a
    read-modify-write operand read and written; none of the fields in ``skip`` (kept on chip)."""
    out = []
    seen: set[tuple[int, Role]] = set()
    for f, v in zip(inst.spec.fields, inst.operands):
        if f.role is Role.NONE or (int(v), f.role) in seen or f.name in skip:
            continue
        seen.add((int(v), f.role))
        d = program.descriptors[int(v)]
        if f.role in (Role.IN, Role.INOUT):
            out.append(view_stream(d, write=False))
        if f.role in (Role.OUT, Role.INOUT):
            out.append(view_stream(d, write=True))
    return out


def _gemm(program: Program, inst: Instruction, skip: frozenset[str] = frozenset()) -> Work:
    dst, a = program.operand_descriptor(inst, "dst"), program.operand_descriptor(inst, "a")
    k = a.shape[-1]
    rows = dst.shape[-2] if len(dst.shape) >= 2 else 1
    return _work(_all(program, inst, skip), matrix_flops=2 * dst.numel * k, gemm_rows=rows,
                 grouped_gemm=inst.grouped)


FP8_PROMOTION_OPS = 2
"""fp32 operations per output per k block of gemm_fp8 beyond the matrix work: the scaled partial sum's
multiply and its add into the accumulator (the promotion DeepSeek-V3 runs on the CUDA cores,
arXiv:2412.19437 section 3.3.2; the per-block scale product is shared by a block's outputs)."""


def _gemm_fp8(program: Program, inst: Instruction, skip: frozenset[str] = frozenset()) -> Work:
    """gemm's matrix work and bytes (fp8 operands move 1 byte per element, scales 4 bytes per block),
    plus the promotion: ``FP8_PROMOTION_OPS`` vector operations per output per k block."""
    work = _gemm(program, inst, skip)
    k_blocks = -(-program.operand_descriptor(inst, "a").shape[-1] // int(inst["block_k"]))
    outputs = program.operand_descriptor(inst, "dst").numel
    fp8 = program.operand_descriptor(inst, "a").dtype is DType.FP8_E4M3
    return replace(work, vector_flops=FP8_PROMOTION_OPS * outputs * k_blocks, fp8_matrix=fp8)


def _elementwise(program: Program, inst: Instruction, skip: frozenset[str] = frozenset()) -> Work:
    first_in = next(f.name for f in inst.spec.fields if f.role is Role.IN)
    per = VECTOR_OPS_PER_ELEMENT[inst.opcode]
    n = max(program.operand_descriptor(inst, first_in).numel, _out(program, inst).numel)
    return _work(_all(program, inst, skip), vector_flops=per * n)


def _out(program: Program, inst: Instruction) -> Descriptor:
    name = next(f.name for f in inst.spec.fields if f.role in (Role.OUT, Role.INOUT))
    return program.operand_descriptor(inst, name)


def _topk(program: Program, inst: Instruction) -> Work:
    src = program.operand_descriptor(inst, "src")
    return _work(_all(program, inst), vector_flops=int(inst["k"]) * src.numel)


def _topk_grouped(program: Program, inst: Instruction) -> Work:
    """k selection passes as topk, plus the bias add, the two-largest per group and the group mask."""
    src = program.operand_descriptor(inst, "src")
    return _work(_all(program, inst), vector_flops=(int(inst["k"]) + 4) * src.numel)


def _rows(program: Program, inst: Instruction, table: str, rows: str, *, write: bool) -> Stream:
    """The rows a gather/scatter touches in ``table``: one row of the ``rows`` operand's last
    dimension per index, at the indexed address."""
    t, r = program.operand_descriptor(inst, table), program.operand_descriptor(inst, rows)
    width = r.shape[-1]
    return row_stream(t.space, r.numel // width, width * t.dtype.itemsize_B, write=write)


def _gather(program: Program, inst: Instruction) -> Work:
    dst, idx = program.operand_descriptor(inst, "dst"), program.operand_descriptor(inst, "idx")
    return _work([view_stream(dst, write=True), view_stream(idx, write=False),
                  _rows(program, inst, "src", "dst", write=False)])


def _scatter_add(program: Program, inst: Instruction) -> Work:
    src, idx, w = (program.operand_descriptor(inst, n) for n in ("src", "idx", "w"))
    return _work([view_stream(src, write=False), view_stream(idx, write=False), view_stream(w, write=False),
                  _rows(program, inst, "dst", "src", write=False), _rows(program, inst, "dst", "src", write=True)],
                 vector_flops=VECTOR_OPS_PER_ELEMENT[Opcode.SCATTER_ADD] * src.numel)


def _scatter(program: Program, inst: Instruction) -> Work:
    src, idx = program.operand_descriptor(inst, "src"), program.operand_descriptor(inst, "idx")
    return _work([view_stream(src, write=False), view_stream(idx, write=False),
                  _rows(program, inst, "dst", "src", write=True)])


def _copy(program: Program, inst: Instruction) -> Work:
    return _work(_all(program, inst))


def _collective(kind: Collective, size_per_src: Callable[[int], int]):
    """``size_per_src(n)``: the nccl-tests size in units of the src operand (all-gather: n slices)."""
    def cost(program: Program, inst: Instruction) -> Work:
        n = int(inst["devices"])
        if n < 2:
            raise InputError(f"{inst.mnemonic}: devices={n}, a group needs at least 2")
        src = program.operand_descriptor(inst, "src")
        return _work(_all(program, inst), collective=(kind, size_per_src(n) * src.footprint_B, n))
    return cost


def _nothing(program: Program, inst: Instruction) -> Work:
    return Work()


_O = Opcode
COST: dict[Opcode, Callable[[Program, Instruction], Work]] = {
    _O.COPY: _copy,
    _O.ALLREDUCE: _collective(Collective.ALLREDUCE, lambda n: 1),
    _O.ALLTOALL: _collective(Collective.ALLTOALL, lambda n: 1),
    _O.ALLGATHER: _collective(Collective.ALLGATHER, lambda n: n),
    _O.GEMM: _gemm, _O.GEMM_ACC: _gemm, _O.GEMM_FP8: _gemm_fp8,
    # every VECTOR instruction, and the fused ones whose work is so many operations per element
    **{s.opcode: _elementwise for s in TABLE if s.group is OpGroup.VECTOR},
    _O.SOFTMAX: _elementwise, _O.SOFTMAX_MASKED: _elementwise, _O.RMSNORM: _elementwise, _O.LAYERNORM: _elementwise,
    _O.TOPK: _topk, _O.TOPK_GROUPED: _topk_grouped,
    _O.GATHER: _gather, _O.SCATTER: _scatter, _O.SCATTER_ADD: _scatter_add,
    _O.LAUNCH: _nothing, _O.SIGNAL: _nothing, _O.WAIT: _nothing, _O.HALT: _nothing,
}


_MEMO_PROGRAMS = 4  # programs whose instructions' work and regions are kept (timed, split, then dropped)
_Memo = tuple[Program, dict[tuple[int, bool], Work], dict[int, tuple[Region, ...]]]
_memo: dict[int, _Memo] = {}


def _remembered(program: Program) -> _Memo:
    """The memo of ``program``: keyed by identity, the program held so that its id stays unique."""
    entry = _memo.get(id(program))
    if entry is None or entry[0] is not program:
        if len(_memo) >= _MEMO_PROGRAMS:
            del _memo[next(iter(_memo))]
        entry = _memo[id(program)] = (program, {}, {})
    return entry


def work_of(program: Program, inst: Instruction, *, fused: bool = False) -> Work:
    """``inst``'s demands; ``fused`` (``fused_attention``): as part of a fused attention kernel,
    without the traffic of the operands it keeps on chip (``AttentionPart.on_chip``) and, for a
    causal chunk, with only the unmasked share of its operations (the kernel skips the tiles above
    the diagonal). A pure function of its arguments, remembered per instruction object of the last
    few programs: the engine and the time splits ask for the same ones."""
    works = _remembered(program)[1]
    key = (id(inst), fused)
    work = works.get(key)
    if work is None:
        work = works[key] = _demands(program, inst, fused)
    return work


def _demands(program: Program, inst: Instruction, fused: bool) -> Work:
    part = inst.attention
    if part is None:
        return COST[inst.opcode](program, inst)
    cost = COST[inst.opcode]
    if not fused:
        return replace(cost(program, inst), attention=part)
    keeps = (_gemm, _gemm_fp8, _elementwise)
    work = cost(program, inst, frozenset(part.on_chip)) if cost in keeps else cost(program, inst)
    share = part.unmasked_share
    return replace(work, attention=part, matrix_flops=round(work.matrix_flops * share),
                   vector_flops=round(work.vector_flops * share))


def work_on(device: DeviceSpec, program: Program, inst: Instruction) -> Work:
    """``inst``'s demands as ``device`` runs it: the engine's and the time splits' one view (fused
    into an attention kernel where ``fused_attention`` says so, else ``work_of``)."""
    return work_of(program, inst, fused=fused_attention(device, inst))


def fused_attention(device: DeviceSpec, inst: Instruction) -> bool:
    """Whether ``inst`` runs in a fused attention kernel on ``device``: it is part of one and its
    unit's efficiency model times that phase of attention (hardware/gpu_efficiency.py)."""
    part = inst.attention
    if part is None or inst.unit is Unit.CTRL:
        return False
    eff = device.compute(inst.unit).efficiency
    if eff is None:
        return False
    return (eff.decode_attention if part.phase == "decode" else eff.prefill_attention) is not None


def regions_of(program: Program, inst: Instruction) -> tuple[Region, ...]:
    """The byte ranges an instruction may touch (whole views, conservatively, for gathers)."""
    regions = _remembered(program)[2]
    out = regions.get(id(inst))
    if out is None:
        out = regions[id(inst)] = tuple(
            Region(d.space, d.base_B, d.base_B + d.extent_B, f.role is not Role.IN)
            for f, v in zip(inst.spec.fields, inst.operands) if f.role is not Role.NONE
            for d in (program.descriptors[int(v)],))
    return out


def channel_bytes(device: DeviceSpec, inst: Instruction, work: Work) -> dict[str, int]:
    """Bytes the instruction moves over each channel of its unit's paths."""
    return device.channel_bytes(inst.unit, work.bytes_by_space)


def compute_s(device: DeviceSpec, inst: Instruction, work: Work) -> float:
    """Time the unit's datapaths need at full throughput, in seconds."""
    if not (work.matrix_flops or work.vector_flops):
        return 0.0
    spec = device.compute(inst.unit)
    t = 0.0
    for flops, tflops, kind in ((work.matrix_flops, spec.matrix_peak_TFLOPS(work.fp8_matrix), "matrix"),
                                (work.vector_flops, spec.vector_TFLOPS, "vector")):
        if flops:
            if tflops <= 0:
                raise InputError(f"device {device.name}: unit {inst.unit.name.lower()} has no {kind} datapath "
                                 f"for {inst.mnemonic}")
            t += flops / (tflops * 1e12)
    return t


def achievable_s(device: DeviceSpec, inst: Instruction, work: Work, *, kernel_hbm_B: int = 0) -> float:
    """The least time the unit's kernels take for ``work`` (hardware/gpu_efficiency.py), by kernel
    class: a GEMM padded to whole tiles at the achievable GEMM fraction and its HBM bytes at the
    streaming fraction; an elementwise or normalisation instruction's HBM bytes at the elementwise
    fraction; a decode-attention instruction's HBM bytes at the bandwidth share of its whole kernel's
    ``kernel_hbm_B`` (0: its own bytes), so the kernel's instructions together take the kernel's
    time; a prefill-attention GEMM's work (for a fused kernel, its unmasked share: ``work_of``) at
    the attention fraction for its context.
    A unit without an efficiency model: its peak datapath time (``compute_s``). Never below
    ``compute_s``."""
    peak = compute_s(device, inst, work)
    eff = device.compute(inst.unit).efficiency if inst.unit is not Unit.CTRL else None
    if eff is None:
        return peak
    spec = device.compute(inst.unit)
    part = work.attention
    by_channel = channel_bytes(device, inst, work)
    hbm = [(by_channel[c], device.channel_bw_GBps(c) * 1e9) for c in device.channels_to(Space.HBM)
           if by_channel.get(c)]
    if part is not None and part.phase == "decode" and eff.decode_attention is not None:
        t = 0.0
        for nbytes, bw in hbm:
            kernel_B = max(kernel_hbm_B, nbytes)
            t = max(t, eff.decode_attention.time_s(kernel_B, bw) * nbytes / kernel_B)
        return max(t, peak)
    t = 0.0
    if work.matrix_flops:
        attn = eff.prefill_attention_fraction(part.context_tokens) if part is not None else None
        if attn is not None:  # a fused kernel's work (work_of(fused=True)): its unmasked share
            t += work.matrix_flops / (spec.matrix_TFLOPS * 1e12 * attn)
        else:
            fraction = eff.gemm_fraction(work.gemm_rows, grouped=work.grouped_gemm)
            t += work.matrix_flops / (spec.matrix_peak_TFLOPS(work.fp8_matrix) * 1e12 * fraction)
    if work.vector_flops:
        t += work.vector_flops / (spec.vector_TFLOPS * 1e12)
    stream = eff.hbm_fraction if work.matrix_flops else eff.elementwise_fraction
    for nbytes, bw in hbm:
        t = max(t, nbytes / (bw * stream))
    return max(t, peak)


@functools.lru_cache(maxsize=4096)
def _plan(ic: Interconnect, kind: Collective, size_B: int, devices: int) -> Plan:
    return plan(ic, kind, size_B, devices)


def link_plan(device: DeviceSpec, work: Work) -> Plan | None:
    """The collective library's fastest plan for ``work``'s collective (None: not a collective)."""
    if work.collective is None:
        return None
    return _plan(device.interconnect, *work.collective)


def link_demand(device: DeviceSpec, work: Work) -> tuple[float, int]:
    """(latency in s, bytes on the engine's link channel): the plan's transfer time expressed as
    bytes at the channel's capacity ``device.link_GBps``, so concurrent collectives share it."""
    p = link_plan(device, work)
    if p is None:
        return 0.0, 0
    return p.latency_s, round(p.transfer_s * device.link_GBps * 1e9)


def link_s(device: DeviceSpec, work: Work) -> float:
    p = link_plan(device, work)
    return 0.0 if p is None else p.time_s


def roofline_bound_s(device: DeviceSpec, inst: Instruction, work: Work) -> float:
    """max(compute at peak, each channel's bytes at its full bandwidth, link time): a lower bound."""
    memory = max((n / (device.channel_bw_GBps(c) * 1e9) for c, n in channel_bytes(device, inst, work).items()),
                 default=0.0)
    return max(compute_s(device, inst, work), memory, link_s(device, work))
