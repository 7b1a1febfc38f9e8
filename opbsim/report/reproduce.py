"""``opbsim reproduce duplex``: the Duplex paper's published rows, the paper's value vs ours.

Every number comes out of the serving simulation (compiler + engine); nothing here is fitted to a
row. The setup follows the paper as it states it: 1 node x 4 devices for Mixtral,
Llama-3-70B and OPT-66B, 1 x 8 for GLaM, 2 x 8 for Grok-1; closed loop; uniform expert routing;
Gaussian lengths (uniform routing is drawn per stage shape on one node; across nodes the experts
of a node are taken as evenly loaded, the expectation under uniform routing). Where the paper is
silent the choice is ours and marked assumed:
- the grid: batch 32, 64, 128 x (L_in, L_out) = (256, 256), (1024, 1024), (4096, 4096), the ends
  and middle of the ranges the paper gives (its exact grid is not stated);
- Gaussian standard deviation: a quarter of the mean (assumed);
- ``REQUESTS_PER_SLOT`` x batch requests per configuration, so each batch slot serves several;
- at most ``DEFAULT_PREFILL_CHUNK_TOKENS`` (emulator/serving.py) prompt tokens per stage (chunked
  prefill), so that a stage's activations fit (128 prompts of 4096 tokens in one stage would not);
- averages are arithmetic means over configurations.
Models the compiler cannot lower yet are reported "not reproduced" with the compiler's own message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from opbsim.compiler import compile_graph
from opbsim.emulator.cluster import Cluster
from opbsim.emulator.engine import run
from opbsim.emulator.serving import ServingResult, context_error
from opbsim.emulator.stage_timer import StageTimer
from opbsim.hardware.registry import get_device
from opbsim.isa.types import Space, Unit
from opbsim.report.reproduce_energy import dynamic_only_note, energy_causes, static_sensitivity
from opbsim.report.reproduce_run import run_units
from opbsim.report.targets import DUPLEX as T
from opbsim.report.targets import Points, Ratio, Verdict
from opbsim.workloads import (
    GaussianLengths,
    ModelConfig,
    ModelGraph,
    PrefillChunk,
    Stage,
    build_layer,
    closed_loop,
    get_preset,
)
from opbsim.workloads.parallel import Parallelism

__all__ = ["System", "Setup", "SYSTEMS", "SETUPS", "Grid", "FULL_GRID", "QUICK_GRID", "Row", "Reproduction",
           "reproduce_duplex", "cluster_of", "variant_means", "energy_pairs"]

STD_FRACTION = 0.25  # assumed: the paper draws lengths from Gaussians without stating their spread
REQUESTS_PER_SLOT = 3  # assumed: requests per configuration = 3 x batch
SEED = 0


@dataclass(frozen=True, slots=True)
class System:
    """A device, its placement policy and its layout: ``et`` (tensor parallel in each node,
    experts tensor parallel: ET), ``ep`` (experts spread over the devices: expert parallel) or
    ``2x`` (twice the devices: the attention data parallel over two groups, experts split between
    them)."""

    label: str
    device: str
    policy: str
    layout: str = "et"


GPU = System("GPU", "h100", "xpu-only")
GPU_2X = System("2xGPU (attention DP2)", "h100", "xpu-only", "2x")
DUPLEX = System("Duplex+PE+ET", "duplex", "duplex")
DUPLEX_NO_PE = System("Duplex+ET (no PE)", "duplex", "duplex-no-pe")
DUPLEX_EP = System("Duplex (EP)", "duplex", "duplex-no-pe", "ep")
DUPLEX_PE_EP = System("Duplex+PE (EP)", "duplex", "duplex", "ep")
BANK_PIM = System("Bank-PIM", "bank-pim", "bank-pim")
SYSTEMS = (GPU, GPU_2X, DUPLEX, DUPLEX_NO_PE, DUPLEX_EP, DUPLEX_PE_EP, BANK_PIM)


@dataclass(frozen=True, slots=True)
class Setup:
    model: str
    devices_per_node: int
    nodes: int


SETUPS = (Setup("mixtral-8x7b", 4, 1), Setup("glam-143b", 8, 1), Setup("grok-1", 8, 2),
          Setup("llama-3-70b", 4, 1), Setup("opt-66b", 4, 1))


@dataclass(frozen=True, slots=True)
class Grid:
    batches: tuple[int, ...]
    lengths: tuple[tuple[int, int], ...]


FULL_GRID = Grid((32, 64, 128), ((256, 256), (1024, 1024), (4096, 4096)))
QUICK_GRID = Grid((32,), ((256, 256),))


@dataclass(frozen=True, slots=True)
class Config:
    """One configuration and each system's result on it."""

    model: str
    batch: int
    lin: int
    lout: int
    results: tuple[tuple[str, ServingResult], ...]

    def of(self, system: System) -> ServingResult:
        return dict(self.results)[system.label]


@dataclass(frozen=True, slots=True)
class Row:
    """A published row. ``ratio`` is ours / paper for numbers, "" otherwise; ``cause`` explains a miss."""

    claim: str
    paper: str
    ours: str
    ratio: str
    tolerance: str
    status: str
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Reproduction:
    grid: Grid
    configs: tuple[Config, ...]
    not_reproduced: tuple[tuple[str, str], ...]  # (model, the compiler's reason)
    not_run: tuple[tuple[str, int, int, int, str], ...]  # (model, batch, L_in, L_out, why)
    rows: tuple[Row, ...]
    causes: tuple[str, ...]
    energy_sensitivity: tuple[tuple[str, str, str, str, str], ...] = ()  # reproduce_energy.static_sensitivity


def cluster_of(system: System, setup: Setup, model: ModelConfig) -> Cluster:
    """``system``'s layout of ``setup``: ``et`` is --devices-per-node N --nodes M; ``ep`` spreads
    the experts over all N x M devices (expert tensor parallel only over what the expert count
    leaves); ``2x`` doubles the groups of N (nodes of up to 8 devices, as a DGX)."""
    device, n, m = get_device(system.device), setup.devices_per_node, setup.nodes
    if system.layout == "et" or (system.layout == "ep" and not model.is_moe):
        return Cluster.from_nodes(device=device, policy=system.policy, devices_per_node=n, nodes=m)
    if system.layout == "ep":
        ep = math.gcd(model.num_experts, n * m)
        return Cluster(device=device, policy=system.policy, node_devices=n,
                       parallel=Parallelism.of(tp=n, dp=m, ep=ep))
    ep = 2 * m if model.is_moe else 1
    return Cluster(device=device, policy=system.policy, node_devices=n if n >= 8 else 2 * n,
                   parallel=Parallelism.of(tp=n, dp=2 * m, ep=ep))


def _probe(setup: Setup, system: System) -> str | None:
    """The compiler's errors for a small decode stage of ``setup`` on ``system``, or None."""
    model = get_preset(setup.model)
    cluster = cluster_of(system, setup, model)
    errors = StageTimer(model, cluster).lowering_errors(Stage.decode(2 * setup.nodes, 16))
    return "; ".join(errors) if errors else None


def reproduce_duplex(grid: Grid = FULL_GRID, progress: Callable[[str], None] | None = None, *,
                     workers: int = 1) -> Reproduction:
    """Run every lowerable setup on every system over ``grid`` and compare with the paper; the
    (setup, system) pairs run on ``workers`` processes (reproduce_run.py: the same results)."""
    say = progress or (lambda _: None)
    skipped: list[tuple[str, str]] = []
    not_run: list[tuple[str, int, int, int, str]] = []
    planned: list[tuple[Setup, tuple[tuple[int, int, int], ...]]] = []
    for setup in SETUPS:
        reason = _probe(setup, DUPLEX)
        if reason is not None:
            skipped.append((setup.model, reason))
            say(f"{setup.model}: not reproduced ({reason})")
            continue
        model = get_preset(setup.model)
        runs = []
        for batch in grid.batches:
            for lin, lout in grid.lengths:
                lengths = GaussianLengths(lin, lin * STD_FRACTION, lout, lout * STD_FRACTION)
                scenario = closed_loop(batch, lengths, num_requests=REQUESTS_PER_SLOT * batch, seed=SEED)
                if (why := context_error(model, scenario)) is not None:
                    not_run.append((setup.model, batch, lin, lout, why))
                    say(f"{setup.model} batch {batch} ({lin}, {lout}): not run ({why})")
                    continue
                runs.append((batch, lin, lout))
        planned.append((setup, tuple(runs)))
    units = [(setup, s, runs) for setup, runs in planned for s in SYSTEMS]
    done = iter(run_units(units, workers, say))
    configs: list[Config] = []
    for setup, runs in planned:
        by_system = [next(done) for _ in SYSTEMS]
        for i, (batch, lin, lout) in enumerate(runs):
            results = tuple((s.label, by_system[j][i]) for j, s in enumerate(SYSTEMS))
            configs.append(Config(setup.model, batch, lin, lout, results))
    rows = _rows(configs, dict(skipped))
    return Reproduction(grid, tuple(configs), tuple(skipped), tuple(not_run), rows, _causes(configs),
                        tuple(static_sensitivity(energy_pairs(configs))))


def energy_pairs(configs) -> list[tuple[str, ServingResult, str, ServingResult, str]]:
    """(model, GPU run, GPU device, Duplex+PE+ET run, its device) per configuration."""
    return [(c.model, c.of(GPU), GPU.device, c.of(DUPLEX), DUPLEX.device) for c in configs]


def _status(ok: bool, scope: str) -> str:
    return ("within tolerance" if ok else "MISS") + (f" ({scope})" if scope else "")


def _times_row(target: Ratio, values: list[float], scope: str, *, best: bool) -> Row:
    """``best``: the maximum of ``values``, else their mean."""
    paper, tol = f"{target.paper:.2f}x", f"+-{target.tolerance:.0%}"
    if not values:
        return Row(target.claim, paper, "-", "", tol, "not reproduced (no lowerable model)")
    ours = max(values) if best else sum(values) / len(values)
    return Row(target.claim, paper, f"{ours:.2f}x", f"{ours / target.paper:.2f}", tol,
               _status(target.within(ours), scope))


def _points(target: Points) -> tuple[str, str]:
    """The paper's value and the tolerance as a row prints them."""
    return f"{target.paper_percent:.2f}%", f"+-{target.tolerance_points:g} points"


def _rows(configs: list[Config], skipped: dict[str, str]) -> tuple[Row, ...]:
    done = sorted({c.model for c in configs})
    scope = f"over {', '.join(done)} only" if skipped else ""
    speed = [c.of(DUPLEX).tokens_per_s / c.of(GPU).tokens_per_s for c in configs]
    energy = [100 * (c.of(DUPLEX).energy_per_token_mJ / c.of(GPU).energy_per_token_mJ - 1) for c in configs]
    latency = [c.of(GPU).e2e_mean_s / c.of(DUPLEX).e2e_mean_s for c in configs]
    rows = [
        _times_row(T.throughput_max, speed, scope, best=True),
        _times_row(T.throughput_mean, speed, scope, best=False),
    ]
    rows.append(_glam_energy_row(configs, energy, skipped.get("glam-143b")))
    if energy:
        avg = sum(energy) / len(energy)
        target = T.energy_mean
        paper, tol = _points(target)
        rows.append(Row(target.claim, paper, f"{avg:.2f}%", f"{avg / target.paper_percent:.2f}", tol,
                        _status(target.within(avg), scope)))
    rows.append(_times_row(T.latency_max, latency, scope, best=True))
    rows.append(_ordering(T.mha_ordering, "opt-66b", configs, skipped))
    rows.append(_ordering(T.gqa_ordering, "llama-3-70b", configs, skipped))
    rows.append(_smallest_gain(configs, skipped.get("grok-1")))
    shares = [(r.decode_only_stage_share, c, label) for c in configs for label, r in c.results]
    low = min(shares, key=lambda t: t[0]) if shares else None
    target = T.decode_majority
    rows.append(Row(target.claim, target.paper,
                    f"min {low[0]:.1%} ({low[1].model}, batch {low[1].batch}, {low[1].lin}/{low[1].lout}, {low[2]})"
                    if low else "-", "", "same", _status(bool(low) and low[0] > 0.5, scope)))
    return tuple(rows)


def _glam_energy_row(configs: list[Config], energy: list[float], reason: str | None) -> Row:
    """GLaM's largest energy reduction (the paper's maximum is GLaM's), and every model's."""
    target = T.energy_max_glam
    paper, tol = _points(target)
    glam = [e for c, e in zip(configs, energy) if c.model == "glam-143b"]
    if reason is not None or not glam:
        return Row(target.claim, paper, "-", "", tol, f"not reproduced: {reason or 'GLaM did not run'}")
    best = min(glam)
    overall, where = min(zip(energy, configs), key=lambda t: t[0])
    return Row(target.claim, paper, f"{best:.2f}% (all models: {overall:.2f}%, {where.model})",
               f"{best / target.paper_percent:.2f}", tol, _status(target.within(best), ""))


def _ordering(target: Verdict, model: str, configs: list[Config], skipped: dict[str, str]) -> Row:
    if model in skipped:
        return Row(target.claim, target.paper, "-", "", "same ordering", f"not reproduced: {skipped[model]}")
    mine = [c for c in configs if c.model == model]
    if not mine:
        return Row(target.claim, target.paper, "-", "", "same ordering", "not reproduced: no configuration ran")
    bank = sum(c.of(BANK_PIM).tokens_per_s for c in mine) / len(mine)
    dup = sum(c.of(DUPLEX).tokens_per_s for c in mine) / len(mine)
    ours = "Bank-PIM faster" if bank > dup else "Duplex faster"
    return Row(target.claim, target.paper, f"{ours} ({max(bank, dup) / min(bank, dup):.2f}x, mean tokens/s)", "",
               "same ordering", _status(ours == target.paper, ""))


def _smallest_gain(configs: list[Config], reason: str | None) -> Row:
    """Whether Grok-1 (2 nodes) has the smallest mean Duplex-vs-GPU throughput gain of the MoE models."""
    target = T.grok_smallest
    gains: dict[str, list[float]] = {}
    for c in configs:
        if get_preset(c.model).is_moe:
            gains.setdefault(c.model, []).append(c.of(DUPLEX).tokens_per_s / c.of(GPU).tokens_per_s)
    if reason is not None or "grok-1" not in gains:
        return Row(target.claim, target.paper, "-", "", "same ordering",
                   f"not reproduced: {reason or 'no Grok-1 configuration ran'}")
    mean = {m: sum(v) / len(v) for m, v in gains.items()}
    low = min(mean, key=mean.get)
    return Row(target.claim, target.paper, f"smallest: {low} ({mean[low]:.2f}x mean)", "", "same ordering",
               _status(low == "grok-1", ""))


def _causes(configs: list[Config]) -> tuple[str, ...]:
    """Observations that explain the gap, computed from the runs (none when nothing ran)."""
    if not configs:
        return ()
    out = []
    pe_slower = [c for c in configs if c.of(DUPLEX).tokens_per_s < c.of(DUPLEX_NO_PE).tokens_per_s]
    if pe_slower:
        worst = min(pe_slower, key=lambda c: c.of(DUPLEX).tokens_per_s / c.of(DUPLEX_NO_PE).tokens_per_s)
        out.append(
            f"Expert co-processing (PE) is slower than Duplex without it in {len(pe_slower)} of {len(configs)} "
            f"configurations (worst: {worst.model}, batch {worst.batch}, {worst.lin}/{worst.lout}: "
            f"{worst.of(DUPLEX).tokens_per_s / worst.of(DUPLEX_NO_PE).tokens_per_s:.2f}x). The split is chosen "
            f"by the analysis cost model (each expert's roofline time on each unit, whole bank-bundle sections "
            f"at a time); the engine's times also include what that model leaves out (the units sharing "
            f"channels, kernel launches, decode attention holding Logic-PIM), so a split predicted faster can "
            f"run slower.")
    comm = [c.of(s).communication_share for c in configs for s in (GPU, DUPLEX)]
    out.append(
        f"Communication with no unit busy takes {min(comm):.0%} to {max(comm):.0%} of the stage time on the GPU "
        f"and on Duplex+PE+ET (two tensor-parallel all-reduces per layer, each timed by the collective model: "
        f"the fastest of NCCL's ring / tree / NVLS and the custom one-shot / two-shot all-reduce for the "
        f"message size; see the collectives section), which dilutes every Duplex-vs-GPU ratio.")
    top = max(configs, key=lambda c: c.of(DUPLEX).tokens_per_s / c.of(GPU).tokens_per_s)
    gpu_share = dict(top.of(GPU).time_share_by_class)
    model = get_preset(top.model)
    group = model.num_heads // model.num_kv_heads
    out.append(
        f"The largest gain ({top.model}, batch {top.batch}, {top.lin}/{top.lout}: "
        f"{top.of(DUPLEX).tokens_per_s / top.of(GPU).tokens_per_s:.2f}x) is where attention takes "
        f"{gpu_share.get('attention', 0.0):.0%} of the GPU's serving time: decode attention's Op/B is the group "
        f"size ({group} for {top.model}), so Logic-PIM streams it at its 4x internal bandwidth while the GPU is "
        f"bound by HBM; with the all-reduces timed by the collective model, communication takes "
        f"{top.of(GPU).communication_share:.0%} of the GPU's stage time there and dilutes little of that gain.")
    out.append(_overlap_note())
    duplex = get_device(DUPLEX.device)
    xpu, pim = duplex.path(Unit.XPU, Space.HBM), duplex.path(Unit.PIM, Space.HBM)
    hbm = duplex.memory(Space.HBM)
    stream_pJ = lambda path: hbm.activate_pJ / hbm.row_B + 8 * (hbm.read_pJ_per_bit + path.datapath_pJ_per_bit)  # noqa: E731
    out.append(
        f"Energy, by mechanism: a streamed DRAM byte costs {stream_pJ(xpu):.1f} pJ read by the xPU and "
        f"{stream_pJ(pim):.1f} pJ by Logic-PIM ({1 - stream_pJ(pim) / stream_pJ(xpu):.0%} less: one "
        f"{hbm.activate_pJ:.0f} pJ activation per {hbm.row_B} B row, the column access, and the data path, "
        f"{xpu.datapath_pJ_per_bit:.2f} vs {pim.datapath_pJ_per_bit:.2f} pJ/bit); the devices draw static power "
        f"({get_device(GPU.device).static_W:.0f} W per GPU, {duplex.static_W:.0f} W per Duplex device) over every "
        f"simulated second, so finishing sooner saves energy too. Per model, where Duplex+PE+ET's saving comes from:")
    out.extend(energy_causes(energy_pairs(configs)))
    out.append(dynamic_only_note(energy_pairs(configs)))
    return tuple(out)


def variant_means(configs: tuple[Config, ...]) -> tuple[tuple[str, float, float, float], ...]:
    """Per system: mean throughput over the configurations relative to GPU and to 2xGPU, and mean
    energy per token relative to GPU."""
    out = []
    for s in SYSTEMS:
        vs_gpu = [c.of(s).tokens_per_s / c.of(GPU).tokens_per_s for c in configs]
        vs_2x = [c.of(s).tokens_per_s / c.of(GPU_2X).tokens_per_s for c in configs]
        energy = [c.of(s).energy_per_token_mJ / c.of(GPU).energy_per_token_mJ for c in configs]
        if configs:
            out.append((s.label, sum(vs_gpu) / len(vs_gpu), sum(vs_2x) / len(vs_2x), sum(energy) / len(energy)))
    return tuple(out)


def _overlap_note() -> str:
    """How long the xPU and Logic-PIM run at the same time in one Mixtral-8x7B layer (tp 4,
    policy duplex): a decode stage (64 requests at 2048 tokens) and a mixed stage (one 2048-token
    prompt and 32 such decodes), each compiled and timed on its own."""
    model = get_preset("mixtral-8x7b")
    device = get_device(DUPLEX.device)
    parts = []
    for label, stage in (("decode", Stage.decode(64, 2048)),
                         ("mixed", Stage(prefill=(PrefillChunk(2048),), decode_ctx_tokens=(2048,) * 32))):
        graph = ModelGraph(model, stage, 4, (), (build_layer(model, stage, 1, tp=4),), ())
        stats = run(compile_graph(graph, device, DUPLEX.policy).program, device)
        busy = {u: [(iv.start_s, iv.end_s) for iv in stats.timeline if iv.unit is u and iv.end_s > iv.start_s]
                for u in (Unit.XPU, Unit.PIM)}
        both = sum(max(0.0, min(a1, b1) - max(a0, b0)) for a0, a1 in busy[Unit.XPU] for b0, b1 in busy[Unit.PIM])
        each = {u: sum(b - a for a, b in v) for u, v in busy.items()}
        parts.append(f"{label} stage: xPU busy {each[Unit.XPU] * 1e6:.0f} us, Logic-PIM {each[Unit.PIM] * 1e6:.0f} us, "
                     f"both at once {both * 1e6:.0f} us of {stats.time_s * 1e6:.0f} us")
    return ("How much the xPU and Logic-PIM overlap on the engine, one Mixtral-8x7B layer (tp 4, policy duplex): "
            + "; ".join(parts) + ". Time that neither fills is mostly the tensor-parallel all-reduces on the links.")
