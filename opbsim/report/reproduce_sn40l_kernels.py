"""The kernel benchmarks of ``opbsim reproduce sn40l``: programs compiled by the four sn40l
policies for the SN40L node (8 sockets, tensor parallel), timed by the engine's dataflow kernel
model, with each program's kernel count and its kernel boundaries by part.

The benchmarks are ours, marked assumed: the paper names its fusion benchmarks only loosely (its
Llama-7B 4k prefill kernel-call comparison is the one with a shape we can rebuild).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opbsim.compiler import compile_graph
from opbsim.emulator.devices.sn40l import BOUNDARY_PARTS, plan_kernel
from opbsim.emulator.engine import run
from opbsim.emulator.work import work_of
from opbsim.hardware.nodes import NodeSpec
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Program
from opbsim.workloads import PrefillChunk, Stage, build_model, get_preset

__all__ = ["POLICIES", "Benchmark", "BENCHMARKS", "KernelRun", "kernel_run", "boundaries"]

POLICIES = ("sn40l", "sn40l-unfused", "sn40l-sw", "sn40l-unfused-sw")


@dataclass(frozen=True, slots=True)
class Benchmark:
    label: str
    model: str
    stage: Stage
    timed: bool = True  # False: compiled for its kernel counts only


BENCHMARKS = (  # assumed: the paper does not list its benchmarks
    Benchmark("llama-2-7b decode, batch 1, ctx 1024", "llama-2-7b", Stage.decode(1, 1024)),
    Benchmark("llama-2-7b decode, batch 64, ctx 1024", "llama-2-7b", Stage.decode(64, 1024)),
    Benchmark("llama-3-70b decode, batch 8, ctx 1024", "llama-3-70b", Stage.decode(8, 1024)),
    Benchmark("mixtral-8x7b decode, batch 8, ctx 1024", "mixtral-8x7b", Stage.decode(8, 1024)),
    Benchmark("llama-2-7b prefill, 1024 tokens", "llama-2-7b", Stage(prefill=(PrefillChunk(1024),))),
    Benchmark("llama-2-7b prefill, 4096 tokens", "llama-2-7b", Stage(prefill=(PrefillChunk(4096),))),
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
        if inst.mnemonic != "launch":
            continue
        body = program.instructions[int(inst["body"]):int(inst["body"]) + int(inst["count"])]
        for part, s in plan_kernel(device, inst, [work_of(program, x) for x in body]).boundary.items():
            out[part] += s
    return out


def kernel_run(b: Benchmark, node: NodeSpec) -> KernelRun:
    device = node.device
    graph = build_model(get_preset(b.model), b.stage, tp=node.devices)
    times, kernels, parts, hbm_B, layer_s = {}, {}, {}, 0, 0.0
    for policy in POLICIES:
        program = compile_graph(graph, device, policy).program
        kernels[policy] = sum(1 for i in program.instructions if i.mnemonic == "launch")
        if not b.timed:
            continue
        stats = run(program, device)
        times[policy] = stats.time_s
        parts[policy] = boundaries(program, device)
        if policy != "sn40l":
            continue
        for iv in stats.timeline:
            inst = program.instructions[iv.index]
            if inst.mnemonic != "launch" or not iv.note.startswith("L"):
                continue
            body = program.instructions[int(inst["body"]):int(inst["body"]) + int(inst["count"])]
            hbm_B += plan_kernel(device, inst, [work_of(program, x) for x in body]).hbm_B
            layer_s += iv.end_s - iv.start_s
    return KernelRun(b, times, kernels, parts, hbm_B, layer_s)
