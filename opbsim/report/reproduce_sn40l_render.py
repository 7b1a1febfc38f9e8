"""The SN40L reproduction as a terminal table, plots and its section of docs/validation.md.

The section sits between two marker comments, so regenerating it leaves the rest of the page (the
Duplex section) as it is; without the markers it is appended.
"""

from __future__ import annotations

from pathlib import Path

from opbsim.report.reproduce_sn40l import COE, Sn40lReproduction
from opbsim.report.tables import format_table, markdown_table
from opbsim.report.validation_page import markers
from opbsim.report.validation_page import write_section as _write_section

__all__ = ["rows_table", "section_markdown", "write_section", "plot_coe", "BEGIN", "END"]

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
              "Stage time (ms) under each policy, and the launches in the program.", ""]
    pols = ("sn40l", "sn40l-unfused", "sn40l-sw", "sn40l-unfused-sw")
    header = ("benchmark", *(f"{p} ms" for p in pols), "fusion", "hw/sw fused", "hw/sw unfused", "launches")
    rows = [(k.benchmark.label, *(f"{k.time_s[p] * 1e3:.3f}" for p in pols),
             *(f"{k.time_s[slow] / k.time_s[fast]:.2f}x" for slow, fast in
               (("sn40l-unfused", "sn40l"), ("sn40l-sw", "sn40l"), ("sn40l-unfused-sw", "sn40l-unfused"))),
             f"{k.launches['sn40l']} / {k.launches['sn40l-unfused']}") for k in rep.kernels]
    parts += [markdown_table(header, rows), "", END]
    return "\n".join(parts) + "\n"


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
