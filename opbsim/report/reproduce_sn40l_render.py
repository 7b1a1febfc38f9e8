"""The SN40L reproduction as a terminal table, plots and its section of docs/validation.md.

The section sits between two marker comments, so regenerating it leaves the rest of the page (the
Duplex section) as it is; without the markers it is appended.
"""

from __future__ import annotations

from pathlib import Path

from opbsim.hardware.device_models.dataflow import BOUNDARY_PARTS
from opbsim.report.reproduce_sn40l import (
    COE,
    Sn40lReproduction,
    coe_speedup,
    fusion_ratios,
    hbm_share,
    orchestration_ratios,
)
from opbsim.report.reproduce_sn40l_kernels import POLICIES
from opbsim.report.tables import format_table, markdown_table
from opbsim.report.validation_page import markers
from opbsim.report.validation_page import write_section as _write_section

__all__ = ["rows_table", "kernels_table", "kernels_markdown", "boundaries_markdown", "section_markdown",
           "sensitivity_markdown", "write_section", "plot_coe", "BEGIN", "END"]

BEGIN, END = markers("opbsim reproduce sn40l")
_HEADER = ("claim", "paper", "ours", "ours/paper", "tolerance", "status")


def rows_table(rep: Sn40lReproduction) -> str:
    """The rows for the terminal, each MISS followed by its cause."""
    table = format_table(_HEADER, [(r.claim, r.paper, r.ours, r.ratio, r.tolerance, r.status) for r in rep.rows])
    causes = [f"- {r.claim}: {r.cause}" for r in rep.rows if r.cause]
    return table + ("\n\ncauses of the misses:\n" + "\n".join(causes) if causes else "")


def _t(v: float | None) -> str:
    return "OOM" if v is None else f"{v:.3f}"


def section_markdown(rep: Sn40lReproduction, command: str, plots: tuple[str, ...] = ()) -> str:
    """The SN40L section of docs/validation.md: rows, causes, the CoE sweep and the kernel runs."""
    sn = rep.coe["sn40l"]
    parts = [
        BEGIN,
        "## SN40L (arXiv 2405.07518)",
        "",
        f"Written by `{command}`; do not edit by hand. The Composition-of-Experts rows come from "
        "emulator/coe.py (router + experts, HBM LRU expert cache, switching = expert bytes / the node's copy "
        "bandwidth) with router and expert times from the engine; the kernel rows from programs compiled by the "
        "sn40l policies and timed by the engine's dataflow kernel model (docs/sn40l.md). No constant is fitted "
        "to a row.",
        "",
        f"CoE setup: {COE.experts} x {COE.expert_model} experts ({sn.expert_B / 1e9:.2f} GB each), a "
        f"{COE.router_model} router (assumed), batch {COE.batch}, {COE.prompt_tokens}-token prompts (assumed), "
        f"{COE.tokens} output tokens, each (prompt, expert) pair in turn, experts picked uniformly (seed "
        f"{COE.seed}), {COE.batches} batches after a warm cache; tensor parallel over the node's 8 devices.",
        "",
        markdown_table(_HEADER, [(r.claim, r.paper, r.ours, r.ratio, r.tolerance, r.status) for r in rep.rows]),
        "",
    ]
    causes = [r for r in rep.rows if r.cause]
    if causes:
        parts += ["### Causes of the misses", "", *(f"- {r.claim}: {r.cause}" for r in causes), ""]
    parts += ["### CoE vs the assumed prompt length", "",
              "Seconds per batch at 150 experts, batch 8, 20 output tokens, each prompt routed (the router's prefill "
              "of the batch) and prefilled by its expert on every node; the speedups of the rows beside them.", "",
              markdown_table(("prompt tokens", *(f"{n} s" for n in rep.prompts[COE.prompt_tokens]),
                              "speedup vs dgx-h100", "speedup vs dgx-a100"),
                             [(str(p), *(f"{r.total_time_s:.3f}" for r in res.values()),
                               f"{coe_speedup(res, 'dgx-h100'):.2f}x", f"{coe_speedup(res, 'dgx-a100'):.2f}x")
                              for p, res in rep.prompts.items()]), ""]
    parts += ["### Latency per batch and footprint vs number of experts", "",
              "Seconds per batch (router + switches + execution); OOM: the node's store cannot hold the experts. "
              "Nodes: nodes needed to serve the experts at TP8 latency.", ""]
    names = tuple(rep.sweep)
    header = ("experts", *(f"{n} s" for n in names), *(f"{n} nodes" for n in names))
    grid = [p.config.experts for p in rep.sweep[names[0]]]
    rows = [(str(e), *(_t(rep.sweep[n][i].total_time_s) for n in names),
             *(str(rep.sweep[n][i].nodes_needed) for n in names)) for i, e in enumerate(grid)]
    parts += [markdown_table(header, rows), ""]
    parts += [f"![{Path(p).stem}]({p})" for p in plots] + ([""] if plots else [])
    parts += ["### Kernel benchmarks on the SN40L node (8 sockets, TP8)", "",
              "Stage time (ms) under each policy, the ratios, the kernels each program launches and its Op/B "
              "(FLOPs per off-chip byte), fused / unfused. The long convolution (workloads/longconv.py) runs on "
              "one socket.", "", kernels_markdown(rep), "",
              "### Kernel boundaries", "",
              "Mean cost of one kernel's boundary, by part, in us (docs/sn40l.md: launch = the sequencer's dispatch "
              "or the host's issue to every socket; barrier = the sockets' barrier over their links or the host's "
              "completion wait; configuration = its exposed load; memory latency = first read and last write; "
              "fill and drain = one tile through every stage and the hand-overs; collective latency = the steps of "
              "the collectives a kernel streams). share: the boundaries' part of the stage time.", "",
              boundaries_markdown(rep), "",
              "### Sensitivity to the assumed boundary parameters", "",
              "Each assumed parameter of the kernel boundary halved and doubled, the others as assumed (stage times "
              "from the kernels' plans, which equal the engine's for these programs of PCU kernels alone on the "
              "socket). link latency scales every latency term of the socket links' collective costs (the barrier "
              "and the collectives' steps); hbm refresh per-bank: HBM refreshed one bank at a time, with no "
              "refresh loss, instead of all banks at once.", "", sensitivity_markdown(rep), "", END]
    return "\n".join(parts) + "\n"


def _kernel_rows(rep: Sn40lReproduction) -> list[tuple[str, ...]]:
    rows = []
    for k in rep.kernels:
        counts = f"{k.kernels['sn40l']} / {k.kernels['sn40l-unfused']}"
        if not k.time_s:
            rows.append((k.benchmark.label, *("-" for _ in POLICIES), "-", "-", "-", counts, "-"))
            continue
        rows.append((k.benchmark.label, *(f"{k.time_s[p] * 1e3:.3f}" for p in POLICIES),
                     *(f"{k.time_s[slow] / k.time_s[fast]:.2f}x" for slow, fast in
                       (("sn40l-unfused", "sn40l"), ("sn40l-sw", "sn40l"), ("sn40l-unfused-sw", "sn40l-unfused"))),
                     counts, f"{k.op_per_B['sn40l']:.1f} / {k.op_per_B['sn40l-unfused']:.1f}"))
    return rows


_KERNEL_HEADER = ("benchmark", *(f"{p} ms" for p in POLICIES), "fusion", "hw/sw fused", "hw/sw unfused", "kernels",
                  "Op/B")


def _boundary_rows(rep: Sn40lReproduction) -> list[tuple[str, ...]]:
    rows = []
    for k in rep.kernels:
        for p in POLICIES if k.time_s else ():
            us = k.per_kernel_us(p)
            share = sum(k.boundary_s[p].values()) / k.time_s[p]
            rows.append((k.benchmark.label, p, str(k.kernels[p]), *(f"{us[part]:.2f}" for part in BOUNDARY_PARTS),
                         f"{sum(us.values()):.2f}", f"{share:.0%}"))
    return rows


_BOUNDARY_HEADER = ("benchmark", "policy", "kernels", *BOUNDARY_PARTS, "total", "share")


def _range(values: dict[str, float], lo: float, hi: float) -> str:
    inside = sum(lo <= v <= hi for v in values.values())
    return f"{min(values.values()):.2f}x to {max(values.values()):.2f}x ({inside} of {len(values)} inside)"


def _sensitivity_rows(rep: Sn40lReproduction) -> list[tuple[str, ...]]:
    timed = [k for k in rep.kernels if k.time_s]
    if not timed:
        return []
    rows = []
    for variant in (None, *timed[0].variants):
        rows.append(("as assumed" if variant is None else variant.replace("_", " ", 1) if variant.startswith("link")
                     else variant,
                     _range(fusion_ratios(rep.kernels, variant), 2, 13),
                     _range(orchestration_ratios(rep.kernels, variant), 1.4, 8),
                     f"{hbm_share(rep.kernels, rep.hbm_GBps, variant):.1%}"))
    return rows


_SENSITIVITY_HEADER = ("parameter", "fusion (paper 2x to 13x)", "hw/sw decode (paper 1.4x to 8x)",
                       "fused decoder HBM share (paper ~85%)")


def sensitivity_markdown(rep: Sn40lReproduction) -> str:
    return markdown_table(_SENSITIVITY_HEADER, _sensitivity_rows(rep))


def kernels_markdown(rep: Sn40lReproduction) -> str:
    return markdown_table(_KERNEL_HEADER, _kernel_rows(rep))


def boundaries_markdown(rep: Sn40lReproduction) -> str:
    return markdown_table(_BOUNDARY_HEADER, _boundary_rows(rep))


def kernels_table(rep: Sn40lReproduction) -> str:
    """The kernel benchmarks and their mean boundary per kernel, for the terminal."""
    return (format_table(_KERNEL_HEADER, _kernel_rows(rep)) + "\n\nmean kernel boundary (us):\n"
            + format_table(_BOUNDARY_HEADER, _boundary_rows(rep)) + "\n\nsensitivity to the assumed boundary "
            "parameters (each halved and doubled):\n" + format_table(_SENSITIVITY_HEADER, _sensitivity_rows(rep)))


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into the page at ``path`` (validation_page.write_section)."""
    _write_section(path, section, BEGIN, END)


def plot_coe(rep: Sn40lReproduction, out_dir: Path) -> tuple[Path, Path]:
    """Two PNGs: latency per batch vs experts, and nodes needed vs experts, for every node."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    latency, footprint = out_dir / "sn40l_coe_latency.png", out_dir / "sn40l_coe_footprint.png"
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for name, points in rep.sweep.items():
        ok = [p for p in points if p.total_time_s is not None]
        line, = ax.plot([p.config.experts for p in ok], [p.total_time_s for p in ok], marker="o", ms=3, label=name)
        oom = [p for p in points if p.total_time_s is None]
        if oom:
            ax.axvline(oom[0].store_experts, color=line.get_color(), ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("experts (log scale); dotted: out of memory beyond")
    ax.set_ylabel(f"seconds per batch (batch {COE.batch}, {COE.tokens} tokens)")
    ax.set_title("Composition of Experts: latency vs number of experts")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(latency, dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (name, points), style in zip(rep.sweep.items(), ("-", "--", ":")):
        ax.step([p.config.experts for p in points], [p.nodes_needed for p in points], where="post", ls=style,
                lw=2, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("experts (log scale)")
    ax.set_ylabel("nodes needed at TP8 latency")
    ax.set_title("Composition of Experts: machine footprint vs number of experts")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(footprint, dpi=120)
    plt.close(fig)
    return latency, footprint
