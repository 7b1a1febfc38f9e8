"""``opbsim reproduce sn40l``: the SN40L paper's published rows, the paper's value vs ours.

Every number comes out of the models: the node presets (hardware/nodes.py), the Composition-of-
Experts model (emulator/coe.py) and, for the kernel rows, programs compiled by the sn40l policies
and timed by the discrete-event engine with the dataflow kernel model. Nothing is fitted to a row.
Choices the paper leaves open are ours, marked assumed: the CoE prompt length (coe.py), and the
benchmarks of the fusion and orchestration rows (``BENCHMARKS``): Llama-2-7B, Llama-3-70B and
Mixtral-8x7B decode and a Llama-2-7B prefill, all tensor-parallel over the node's 8 sockets.
A row outside its tolerance is reported MISS with the cause the runs show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from opbsim.compiler import compile_graph
from opbsim.emulator.coe import CoEConfig, CoEResult, policy_for, simulate_coe
from opbsim.emulator.engine import run
from opbsim.emulator.work import link_s, work_of
from opbsim.hardware.nodes import NodeSpec, get_node
from opbsim.hardware.sn40l import SN40L_HBM, HBM_PEAK_GBps
from opbsim.isa.types import OpGroup, Space
from opbsim.report.reproduce import Row
from opbsim.report.reproduce_sn40l_kernels import BENCHMARKS, Benchmark, KernelRun, kernel_run
from opbsim.report.targets import SN40L, Range, Ratio
from opbsim.units import TB
from opbsim.workloads import Stage, build_model, get_preset

__all__ = ["Row", "Benchmark", "BENCHMARKS", "KernelRun", "Sn40lReproduction", "EXPERT_GRID", "reproduce_sn40l",
           "sn40l_rows", "fusion_ratios", "orchestration_ratios", "hbm_share", "coe_speedup", "PROMPTS"]

EXPERT_GRID = (1, 10, 20, 30, 40, 45, 50, 55, 60, 80, 100, 120, 140, 150, 160, 170, 200, 300, 500, 850, 1000)
NODES = ("sn40l", "dgx-h100", "dgx-a100")
COE = CoEConfig(experts=150, batch=8, tokens=20)  # [S] Samba-CoE: 150 experts, batch 8, 20 output tokens
PROMPTS = (128, 512, 2048)  # the assumed prompt length (COE's is the first) and its alternatives


@dataclass(frozen=True, slots=True)
class Sn40lReproduction:
    rows: tuple[Row, ...]
    coe: dict[str, CoEResult]  # per node, the paper's CoE setup
    prompts: dict[int, dict[str, CoEResult]]  # per prompt length (PROMPTS), per node
    sweep: dict[str, tuple[CoEResult, ...]]  # per node, over EXPERT_GRID
    kernels: tuple[KernelRun, ...]
    hbm_GBps: float


def _status(ok: bool) -> str:
    return "within tolerance" if ok else "MISS"


def _x(v: float) -> str:
    return f"{v:.2f}x"


def _ratio_row(target: Ratio, ours: float, cause: str) -> Row:
    ok = target.within(ours)
    return Row(target.claim, _x(target.paper), _x(ours), f"{ours / target.paper:.2f}", f"+-{target.tolerance:.0%}",
               _status(ok), "" if ok else cause)


def _count_row(target: Ratio, ours: int, cause: str) -> Row:
    ok = target.within(ours)
    return Row(target.claim, f"{target.paper:g}", str(ours), f"{ours / target.paper:.2f}", f"+-{target.tolerance:.0%}",
               _status(ok), "" if ok else cause)


def _range_row(target: Range, values: dict[str, float], cause: str) -> Row:
    inside = [v for v in values.values() if target.within(v)]
    ok = len(inside) == len(values)
    ours = f"{min(values.values()):.2f}x to {max(values.values()):.2f}x over {len(values)} benchmarks"
    return Row(target.claim, f"{target.lo:g}x to {target.hi:g}x", ours, "", "inside the range",
               _status(ok) + ("" if ok else f" ({len(inside)} of {len(values)} inside)"), "" if ok else cause)


def coe_speedup(results: dict[str, CoEResult], dgx: str) -> float:
    return results[dgx].total_time_s / results["sn40l"].total_time_s


def sn40l_rows(coe: dict[str, CoEResult], sweep: dict[str, tuple[CoEResult, ...]], kernels: tuple[KernelRun, ...],
               hbm_GBps: float, collectives: dict[str, float],
               prompts: dict[int, dict[str, CoEResult]] | None = None) -> tuple[Row, ...]:
    """The SN40L paper's rows from the runs; ``collectives``: per node, the share of a CoE
    decode step its collectives take; ``prompts``: the CoE runs at other prompt lengths, shown
    beside the speedup rows."""
    sn, h100, a100 = coe["sn40l"], coe["dgx-h100"], coe["dgx-a100"]
    rows = [
        _ratio_row(SN40L.switch_h100, h100.switch_s / sn.switch_s,
                   "switching is expert bytes / copy bandwidth: the ratio is the node presets' copy bandwidths"),
        _ratio_row(SN40L.switch_a100, a100.switch_s / sn.switch_s,
                   "switching is expert bytes / copy bandwidth: the ratio is the node presets' copy bandwidths"),
    ]
    for name, target, dgx, node in (("DGX H100", SN40L.coe_h100, h100, "dgx-h100"),
                                    ("DGX A100", SN40L.coe_a100, a100, "dgx-a100")):
        row = _ratio_row(
            target, dgx.total_time_s / sn.total_time_s,
            f"per batch the {name} spends {dgx.switch_time_s:.2f} s switching ({dgx.switches_per_batch:.1f} misses, "
            f"{dgx.cache_slots} experts in HBM), {dgx.router_time_s:.3f} s routing and {dgx.exec_time_s:.2f} s "
            f"executing, SN40L {sn.switch_time_s:.3f} s, {sn.router_time_s:.3f} s and {sn.exec_time_s:.3f} s; "
            f"collectives alone would take {collectives[node]:.0%} of a {name} decode step and "
            f"{collectives['sn40l']:.0%} of an SN40L one (the DGX all-reduces timed by NCCL's cost model and the "
            f"custom all-reduce, SN40L's by assumed direct-link costs: docs/collectives.md); the prompt length is "
            f"assumed ({COE.prompt_tokens} tokens; the other lengths beside the value)")
        others = {p: coe_speedup(r, node) for p, r in (prompts or {}).items() if p != COE.prompt_tokens}
        if others:
            row = replace(row, ours=row.ours + " (prompt " + ", ".join(f"{p}: {v:.2f}x" for p, v in others.items())
                          + ")")
        rows.append(row)
    held = sn.experts_per_node
    dgx_nodes = -(-held // h100.experts_per_node)
    node = get_node("sn40l")
    ddr = node.device.memory(Space.DDR).capacity_B
    rows.append(_count_row(
        SN40L.experts_held, held,
        f"ours is the node's DDR ({node.devices} x {ddr / TB:g} TB) / expert bytes ({sn.expert_B / 1e9:.2f} GB), "
        f"with no DDR kept for anything else; the paper does not say what else its DDR holds"))
    rows.append(_count_row(SN40L.dgx_nodes, dgx_nodes, f"{held} experts at {h100.experts_per_node} per DGX HBM"))
    rows.append(_shape_row(sweep["dgx-h100"]))
    fusion = fusion_ratios(kernels)
    rows.append(_range_row(SN40L.fusion, fusion, _fusion_cause(kernels, fusion)))
    orchestration = orchestration_ratios(kernels)
    rows.append(_range_row(SN40L.orchestration, orchestration, _orchestration_cause(kernels, orchestration)))
    share = hbm_share(kernels, hbm_GBps)
    target = SN40L.hbm_share
    ok = target.within(share * 100)
    rows.append(Row(target.claim, f"~{target.paper_percent:g}%", f"{share:.1%}", "",
                    f"+-{target.tolerance_points:g} points", _status(ok),
                    "" if ok else _share_cause(kernels, hbm_GBps)))
    return tuple(rows)


def _times(k: KernelRun, variant: str | None) -> dict[str, float]:
    return k.time_s if variant is None else k.variants[variant]


def fusion_ratios(kernels: tuple[KernelRun, ...], variant: str | None = None) -> dict[str, float]:
    """Unfused / fused stage time per timed benchmark (``variant``: a sensitivity variant's times)."""
    return {k.benchmark.label: _times(k, variant)["sn40l-unfused"] / _times(k, variant)["sn40l"]
            for k in kernels if k.time_s}


def orchestration_ratios(kernels: tuple[KernelRun, ...], variant: str | None = None) -> dict[str, float]:
    """Software- / hardware-orchestrated stage time per decode benchmark, fused and unfused."""
    return {f"{k.benchmark.label}, {kind}": _times(k, variant)[f"{pol}-sw"] / _times(k, variant)[pol]
            for k in kernels if k.is_decode and k.time_s
            for kind, pol in (("fused", "sn40l"), ("unfused", "sn40l-unfused"))}


def _share_runs(kernels: tuple[KernelRun, ...]) -> list[KernelRun]:
    return [k for k in kernels if k.is_decode and k.time_s and k.benchmark.model == "llama-2-7b"]


def hbm_share(kernels: tuple[KernelRun, ...], hbm_GBps: float, variant: str | None = None) -> float:
    """HBM bytes over time of the fused decoder-layer kernels of llama-2-7b decode, over peak HBM."""
    runs = _share_runs(kernels)
    seconds = sum(k.layer_s if variant is None else k.variant_layer_s[variant] for k in runs)
    return sum(k.layer_hbm_B for k in runs) / seconds / (hbm_GBps * 1e9)


def _boundary_ms(k: KernelRun, policy: str) -> float:
    return sum(k.boundary_s[policy].values()) * 1e3


def _fusion_cause(kernels: tuple[KernelRun, ...], ratios: dict[str, float]) -> str:
    out = []
    for k in kernels:
        r = ratios.get(k.benchmark.label)
        if r is None or 2 <= r <= 13:
            continue
        fused, unfused = k.time_s["sn40l"] * 1e3, k.time_s["sn40l-unfused"] * 1e3
        boundaries = _boundary_ms(k, "sn40l-unfused") - _boundary_ms(k, "sn40l")
        extra_GB = (k.hbm_B["sn40l-unfused"] - k.hbm_B["sn40l"]) / 1e9
        out.append(f"{k.benchmark.label} ({r:.2f}x): unfusing adds {unfused - fused:.2f} ms to the fused "
                   f"{fused:.2f} ms, {boundaries:.2f} ms of it kernel boundaries ({k.kernels['sn40l-unfused']} "
                   f"kernels instead of {k.kernels['sn40l']}) and the rest the HBM round trips of the intermediates "
                   f"({extra_GB:.2f} GB more traffic); the fused stage is itself "
                   f"{1 - _boundary_ms(k, 'sn40l') / fused:.0%} streaming and compute that no fusion removes")
    return "; ".join(out) + ("; the paper does not say which of its benchmarks gives which ratio" if out else "")


def _orchestration_cause(kernels: tuple[KernelRun, ...], ratios: dict[str, float]) -> str:
    out = []
    for k in kernels:
        for kind, pol in (("fused", "sn40l"), ("unfused", "sn40l-unfused")):
            r = ratios.get(f"{k.benchmark.label}, {kind}")
            if r is None or 1.4 <= r <= 8:
                continue
            extra = (k.time_s[f"{pol}-sw"] - k.time_s[pol]) * 1e3
            out.append(f"{k.benchmark.label}, {kind} ({r:.2f}x): {k.kernels[pol]} kernels add {extra:.2f} ms of host "
                       f"issue, completion waits and configuration loads to a {k.time_s[pol] * 1e3:.2f} ms stage")
    return "; ".join(out) + ("; the host costs are a GPU's (assumed: see the sensitivity table)" if out else "")


def _share_cause(kernels: tuple[KernelRun, ...], hbm_GBps: float) -> str:
    runs = _share_runs(kernels)
    boundary = sum(sum(k.boundary_s["sn40l"].values()) for k in runs)
    total = sum(k.time_s["sn40l"] for k in runs)
    return (f"over the decoder-layer kernels of llama-2-7b decode (batch 1 and 64): HBM streams at most "
            f"{1 - SN40L_HBM.refresh_loss:.1%} of its peak (all-bank refresh, tRFC {SN40L_HBM.tRFC_ns:g} ns every "
            f"tREFI {SN40L_HBM.tREFI_ns:g} ns), and kernel boundaries take {boundary / total:.0%} of the fused stage "
            f"time (launch, barrier, memory latency, fill and drain, collective latency: the kernel boundaries table)")


def _shape_row(points: tuple[CoEResult, ...]) -> Row:
    """Where DGX latency first rises 5% above its all-resident value, and the most experts that fit."""
    flat = points[0].total_time_s
    jump = next((p.config.experts for p in points if p.total_time_s is not None and p.total_time_s > 1.05 * flat), None)
    limit = points[0].store_experts
    ours = f"jumps at {jump} experts on the grid (HBM holds {points[0].cache_slots}); out of memory beyond {limit}"
    target = SN40L.dgx_shape
    ok = target.within(jump, limit)
    return Row(target.claim, target.paper, ours, "", "same shape", _status(ok),
               "" if ok else "see the sweep and its plot")


def reproduce_sn40l(progress: Callable[[str], None] | None = None,
                    benchmarks: tuple[Benchmark, ...] = BENCHMARKS,
                    experts_grid: tuple[int, ...] = EXPERT_GRID) -> Sn40lReproduction:
    """Run the CoE model on the three nodes and the kernel benchmarks on the SN40L node."""
    say = progress or (lambda _line: None)
    nodes = {n: get_node(n) for n in NODES}
    coe = {n: simulate_coe(node, COE) for n, node in nodes.items()}
    say("CoE, 150 experts: " + ", ".join(f"{n} {r.total_time_s:.3f} s" for n, r in coe.items()))
    prompts = {p: coe if p == COE.prompt_tokens else
               {n: simulate_coe(node, replace(COE, prompt_tokens=p)) for n, node in nodes.items()} for p in PROMPTS}
    sweep = {n: tuple(simulate_coe(node, CoEConfig(experts=e, batch=COE.batch, tokens=COE.tokens))
                      for e in experts_grid) for n, node in nodes.items()}
    kernels = []
    for b in benchmarks:
        kernels.append(kernel_run(b, nodes["sn40l"]))
        say(f"{b.label}: " + ", ".join(f"{p} {t * 1e3:.3f} ms" for p, t in kernels[-1].time_s.items())
            + f" ({kernels[-1].kernels['sn40l']} / {kernels[-1].kernels['sn40l-unfused']} kernels)")
    hbm = HBM_PEAK_GBps
    collectives = {n: _collective_share(node) for n, node in nodes.items()}
    rows = sn40l_rows(coe, sweep, tuple(kernels), hbm, collectives, prompts)
    return Sn40lReproduction(rows, coe, prompts, sweep, tuple(kernels), hbm)


def _collective_share(node: NodeSpec) -> float:
    """The share of one CoE decode step (an expert, batch 1) that its collectives would take alone
    (each one's latency and transfer by the collective model, summed over the step), on any unit."""
    stage = Stage.decode(1, COE.prompt_tokens + COE.tokens // 2)
    program = compile_graph(build_model(get_preset(COE.expert_model), stage, tp=node.devices), node.device,
                            policy_for(node)).program
    stats = run(program, node.device)
    alone = sum(link_s(node.device, work_of(program, i)) for i in program.instructions
                if i.spec.group is OpGroup.COLLECTIVE)
    return alone / stats.time_s
