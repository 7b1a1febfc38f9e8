"""The kernel benchmarks of ``opbsim reproduce sn40l``: programs compiled by the four sn40l
policies for the SN40L node (8 sockets, tensor parallel), timed by the engine's dataflow kernel
model, with each program's kernel count and its kernel boundaries by part.

The benchmarks are ours, marked assumed: the paper names its fusion benchmarks only loosely (its
Llama-7B 4k prefill kernel-call comparison is the one with a shape we can rebuild).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from opbsim.compiler import compile_graph
from opbsim.emulator.devices import kernel_stages
from opbsim.emulator.engine import run
from opbsim.emulator.work import Work, work_of
from opbsim.hardware.device_models.dataflow import BOUNDARY_PARTS, DataflowPlan, plan_kernel
from opbsim.hardware.nodes import NodeSpec
from opbsim.hardware.sn40l import SN40L_HBM, HBM_PEAK_GBps
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Instruction, Program
from opbsim.isa.spec import Opcode
from opbsim.isa.types import Space
from opbsim.workloads import PrefillChunk, Stage, build_model, get_preset
from opbsim.workloads.longconv import LongConv, build_long_conv

__all__ = ["FFT_CONV", "POLICIES", "SENSITIVITY", "Benchmark", "BENCHMARKS", "KernelRun", "kernel_run", "boundaries",
           "program_time", "variant_device", "variant_keys", "variant_of", "PER_BANK"]

POLICIES = ("sn40l", "sn40l-unfused", "sn40l-sw", "sn40l-unfused-sw")
SENSITIVITY = ("hw_launch_us", "host_launch_us", "host_sync_us", "memory_latency_ns", "config_B_per_unit",
               "hop_cycles", "link_latency")
"""The assumed boundary parameters whose sensitivity is shown (each halved and doubled); ``link_latency``
scales every latency term of the socket links' collective costs (barrier and collective steps)."""
FACTORS = (0.5, 2.0)
PER_BANK = "hbm refresh per-bank"
"""The variant with HBM refreshed one bank at a time (no refresh loss) instead of all banks at once."""


@dataclass(frozen=True, slots=True)
class Benchmark:
    """A model's stage, tensor-parallel over the node; or, with ``conv``, a long convolution on one
    socket (``model`` and ``stage`` then only label it)."""

    label: str
    model: str
    stage: Stage
    timed: bool = True  # False: compiled for its kernel counts only
    conv: LongConv | None = None

    def graph(self, node: NodeSpec):
        if self.conv is not None:
            return build_long_conv(self.conv)
        return build_model(get_preset(self.model), self.stage, tp=node.devices)


FFT_CONV = LongConv(batch=1, channels=768, n1=64, n2=64)
"""assumed: the width of a 125M-parameter Hyena model (768 channels) and an FFT of 4096 points (a
2048-token causal convolution, zero-padded), one sequence."""


BENCHMARKS = (  # assumed: the paper does not list its benchmarks
    Benchmark("llama-2-7b decode, batch 1, ctx 1024", "llama-2-7b", Stage.decode(1, 1024)),
    Benchmark("llama-2-7b decode, batch 64, ctx 1024", "llama-2-7b", Stage.decode(64, 1024)),
    Benchmark("llama-3-70b decode, batch 8, ctx 1024", "llama-3-70b", Stage.decode(8, 1024)),
    Benchmark("mixtral-8x7b decode, batch 8, ctx 1024", "mixtral-8x7b", Stage.decode(8, 1024)),
    Benchmark("llama-2-7b prefill, 1024 tokens", "llama-2-7b", Stage(prefill=(PrefillChunk(1024),))),
    Benchmark("llama-2-7b prefill, 4096 tokens", "llama-2-7b", Stage(prefill=(PrefillChunk(4096),))),
    Benchmark("monarch-fft long conv, 768 x 4096, one socket", "long-conv", Stage(prefill=(PrefillChunk(4096),)),
              conv=FFT_CONV),
)


@dataclass(frozen=True, slots=True)
class KernelRun:
    """One benchmark under each sn40l policy: stage time (s), kernels launched, and the kernel
    boundaries summed over the program by part (s, ``BOUNDARY_PARTS``); for the fused program the
    HBM bytes and time of its decoder-layer kernels (launches of ops of a layer ``L<n>``)."""

    benchmark: Benchmark
    time_s: dict[str, float]
    kernels: dict[str, int]
    boundary_s: dict[str, dict[str, float]] = field(default_factory=dict)
    layer_hbm_B: int = 0
    layer_s: float = 0.0
    hbm_B: dict[str, int] = field(default_factory=dict)  # policy -> the program's HBM traffic
    op_per_B: dict[str, float] = field(default_factory=dict)  # policy -> FLOPs / off-chip bytes
    variants: dict[str, dict[str, float]] = field(default_factory=dict)  # "param x f" -> policy -> s
    variant_layer_s: dict[str, float] = field(default_factory=dict)  # "param x f" -> fused layer kernels' s

    @property
    def is_decode(self) -> bool:
        return self.benchmark.stage.is_decode_only

    def per_kernel_us(self, policy: str) -> dict[str, float]:
        """The mean boundary cost of one kernel of ``policy``'s program, by part, in us."""
        n = max(self.kernels[policy], 1)
        return {part: s / n * 1e6 for part, s in self.boundary_s[policy].items()}


def boundaries(program: Program, device: DeviceSpec) -> dict[str, float]:
    """Every kernel's boundary parts (seconds), summed over the program's launches."""
    out = dict.fromkeys(BOUNDARY_PARTS, 0.0)
    for inst in program.instructions:
        if inst.opcode is not Opcode.LAUNCH:
            continue
        body = program.instructions[int(inst["body"]):int(inst["body"]) + int(inst["count"])]
        for part, s in _plan(device, inst, [work_of(program, x) for x in body]).boundary.items():
            out[part] += s
    return out


def variant_keys() -> tuple[str, ...]:
    """The sensitivity variants: each ``SENSITIVITY`` parameter halved and doubled, then ``PER_BANK``."""
    return (*(f"{p} x{f:g}" for p in SENSITIVITY for f in FACTORS), PER_BANK)


def variant_of(device: DeviceSpec, key: str) -> DeviceSpec:
    """``device`` changed as the variant ``key`` (``variant_keys``) says."""
    if key == PER_BANK:
        hbm = replace(SN40L_HBM, refresh="per-bank")
        external = device.channels_to(Space.HBM)
        channels = tuple(replace(c, bw_GBps=hbm.sustained_GBps(HBM_PEAK_GBps)) if c.name in external else c
                         for c in device.channels)
        return replace(device, channels=channels)
    param, factor = key.rsplit(" x", 1)
    return variant_device(device, param, float(factor))


def variant_device(device: DeviceSpec, param: str, factor: float) -> DeviceSpec:
    """``device`` with one assumed boundary parameter (``SENSITIVITY``) scaled by ``factor``."""
    if param == "link_latency":
        ic = device.interconnect
        costs = tuple(replace(c, base_us=c.base_us * factor, intra_step_us=c.intra_step_us * factor,
                              inter_step_us=c.inter_step_us * factor) for c in ic.library.costs)
        return replace(device, interconnect=replace(ic, library=replace(ic.library, costs=costs)))
    params = device.model.params
    value = type(getattr(params, param))(getattr(params, param) * factor)
    return replace(device, model=replace(device.model, params=replace(params, **{param: value})))


def _plan(device: DeviceSpec, launch: Instruction, works: list[Work]) -> DataflowPlan:
    return plan_kernel(device, launch, kernel_stages(device, launch, works))


def _launches(program: Program, layer_of: tuple[int | None, ...] = ()) -> list[tuple[Instruction, list[Work], bool]]:
    """Each launch, the works of its body, and whether it is a decoder layer's kernel (per ``layer_of``,
    the compiler's layer of each instruction; none is without it)."""
    out = []
    for i, inst in enumerate(program.instructions):
        if inst.opcode is Opcode.HALT:
            break
        if inst.opcode is Opcode.LAUNCH:
            body = program.instructions[int(inst["body"]):int(inst["body"]) + int(inst["count"])]
            out.append((inst, [work_of(program, x) for x in body], i < len(layer_of) and layer_of[i] is not None))
    return out


def program_time(program: Program | list, device: DeviceSpec, layers_only: bool = False) -> float:
    """A program made only of PCU kernels runs them one after another, each alone on the socket:
    the sum of their plans (the engine's time for such a program). ``layers_only``: the sum over
    the kernels of decoder layers. ``program`` may be its launches with their works, as ``_launches``
    gives them."""
    launches = _launches(program) if isinstance(program, Program) else program
    return sum(_plan(device, inst, works).time_s for inst, works, in_layer in launches
               if not layers_only or in_layer)


def kernel_run(b: Benchmark, node: NodeSpec) -> KernelRun:
    device = node.device
    graph = b.graph(node)
    times, kernels, parts, hbm_B, layer_s, traffic, intensity = {}, {}, {}, 0, 0.0, {}, {}
    variants: dict[str, dict[str, float]] = {}
    variant_layer_s: dict[str, float] = {}
    for policy in POLICIES:
        compiled = compile_graph(graph, device, policy)
        program = compiled.program
        kernels[policy] = sum(1 for i in program.instructions if i.opcode is Opcode.LAUNCH)
        if not b.timed:
            continue
        stats = run(program, device)
        times[policy] = stats.time_s
        by_space = dict(stats.bytes_by_space)
        traffic[policy] = by_space.get(Space.HBM, 0)
        intensity[policy] = stats.flops / max(by_space.get(Space.HBM, 0) + by_space.get(Space.DDR, 0), 1)
        parts[policy] = boundaries(program, device)
        launches = _launches(program, compiled.layer_of)
        for key in variant_keys():
            other = variant_of(device, key)
            variants.setdefault(key, {})[policy] = program_time(launches, other)
            if policy == "sn40l":
                variant_layer_s[key] = program_time(launches, other, layers_only=True)
        if policy != "sn40l":
            continue
        for iv in stats.timeline:
            inst = program.instructions[iv.index]
            if inst.opcode is not Opcode.LAUNCH or compiled.layer_of[iv.index] is None:
                continue
            body = program.instructions[int(inst["body"]):int(inst["body"]) + int(inst["count"])]
            hbm_B += _plan(device, inst, [work_of(program, x) for x in body]).hbm_B
            layer_s += iv.end_s - iv.start_s
    return KernelRun(b, times, kernels, parts, hbm_B, layer_s, traffic, intensity, variants, variant_layer_s)
