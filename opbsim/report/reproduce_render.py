"""The Duplex reproduction as a terminal table and as docs/validation.md."""

from __future__ import annotations

from pathlib import Path

from opbsim.emulator.serving import DEFAULT_PREFILL_CHUNK_TOKENS
from opbsim.report.reproduce import (
    DUPLEX,
    GPU,
    REQUESTS_PER_SLOT,
    SETUPS,
    STD_FRACTION,
    SYSTEMS,
    Reproduction,
    variant_means,
)
from opbsim.report.tables import format_table, markdown_table
from opbsim.report.validation_page import markers
from opbsim.report.validation_page import write_section as _write_section

__all__ = ["rows_table", "validation_markdown", "write_section", "BEGIN", "END"]

BEGIN, END = markers("opbsim reproduce duplex")

_ROW_HEADER = ("claim", "paper", "ours", "ours/paper", "tolerance", "status")


def rows_table(rep: Reproduction) -> str:
    """The published rows, paper vs ours vs ratio, for the terminal."""
    return format_table(_ROW_HEADER, [(r.claim, r.paper, r.ours, r.ratio, r.tolerance, r.status) for r in rep.rows])


def write_section(path: Path, section: str) -> None:
    """Put ``section`` into the page at ``path`` (validation_page.write_section)."""
    _write_section(path, section, BEGIN, END)


def validation_markdown(rep: Reproduction, command: str) -> str:
    """The Duplex section of docs/validation.md (BEGIN..END): the rows, why some are not
    reproduced or missed, and every run."""
    g = rep.grid
    parts = [
        BEGIN,
        "## Duplex (arXiv 2409.01141)",
        "",
        f"Written by `{command}`; do not edit by hand. Every value in the \"ours\" column comes out of the "
        "serving simulation (compiler + discrete-event engine, opbsim/emulator/serving.py); no constant is "
        "fitted to a row.",
        "",
        "Setup: closed loop, uniform expert routing (drawn once per stage shape; across nodes the balanced "
        "expectation), "
        f"Gaussian lengths (standard deviation {STD_FRACTION:g} x the "
        f"mean, assumed), {REQUESTS_PER_SLOT} x batch requests per configuration, batch "
        f"{', '.join(map(str, g.batches))} x (L_in, L_out) {', '.join(f'({a}, {b})' for a, b in g.lengths)}, "
        f"at most {DEFAULT_PREFILL_CHUNK_TOKENS} prompt tokens per stage (chunked prefill, assumed); "
        "devices per setup as the paper states them (" + ", ".join(
            f"{st.model} {st.nodes} x {st.devices_per_node}" for st in SETUPS) + "). Systems: "
        + "; ".join(f"{s.label} = device `{s.device}`, policy `{s.policy}`" for s in SYSTEMS)
        + ". Averages are arithmetic means over the configurations run.",
        "",
        markdown_table(_ROW_HEADER, [(r.claim, r.paper, r.ours, r.ratio, r.tolerance, r.status) for r in rep.rows]),
        "",
    ]
    if rep.not_reproduced:
        parts += ["### Not reproduced", "",
                  "The compiler cannot lower these models yet; the reason is its own error message:", ""]
        parts += [f"- {m}: {reason}" for m, reason in rep.not_reproduced]
        parts.append("")
    if rep.not_run:
        parts += ["### Configurations not run", ""]
        parts += [f"- {m}, batch {b}, ({lin}, {lout}): {why}" for m, b, lin, lout, why in rep.not_run]
        parts.append("")
    if rep.causes:
        parts += ["### Causes of the gaps", ""] + [f"- {c}" for c in rep.causes] + [""]
    if rep.energy_sensitivity:
        parts += ["### Sensitivity of the energy rows to the static powers", "",
                  "Each static figure of the presets scaled by 0.5 and 1.5 alone. An analytic rescale of the runs "
                  "above, nothing rerun: static energy is the device's static power times the simulated time, and "
                  "no timing depends on power (opbsim/report/reproduce_energy.py).", "",
                  markdown_table(("static figure", "average reduction x0.5", "average reduction x1.5",
                                  "GLaM max reduction x0.5", "GLaM max reduction x1.5"), list(rep.energy_sensitivity)),
                  ""]
    if rep.configs:
        parts += ["### Layouts and variants", "",
                  "Mean over the configurations of each system's throughput relative to GPU and to 2xGPU, and of "
                  "its energy per token relative to GPU. ET: every device holds a slice of every expert (tensor "
                  "parallel in the node, as --devices-per-node); EP: experts spread over the devices, rows moved "
                  "by all-to-all; 2xGPU: twice the devices, the attention data parallel over two groups and the "
                  "experts split between them. Layouts that exchange experts use balanced routing (the "
                  "expectation of uniform routing).", ""]
        parts += [markdown_table(("system", "layout", "tokens/s vs GPU", "tokens/s vs 2xGPU", "energy/token vs GPU"),
                                 [(label, next(s.layout for s in SYSTEMS if s.label == label), f"{g:.2f}x",
                                   f"{x:.2f}x", f"{e:.2f}x") for label, g, x, e in variant_means(rep.configs)]), ""]
    parts += ["### Every configuration", "",
              "tokens/s, energy per token (mJ), mean end-to-end latency (s), share of decode-only stages, and the "
              "batch after the capacity cap.", ""]
    header = ("model", "batch", "L_in/L_out", "max batch", *(f"{s.label} tok/s" for s in SYSTEMS),
              f"{DUPLEX.label} / {GPU.label}", f"{GPU.label} mJ/tok", f"{DUPLEX.label} mJ/tok",
              f"{GPU.label} e2e s", f"{DUPLEX.label} e2e s", "decode-only")
    rows = []
    for c in rep.configs:
        d, gp = c.of(DUPLEX), c.of(GPU)
        rows.append((c.model, str(c.batch), f"{c.lin}/{c.lout}", str(d.max_batch),
                     *(f"{c.of(s).tokens_per_s:.0f}" for s in SYSTEMS), f"{d.tokens_per_s / gp.tokens_per_s:.2f}",
                     f"{gp.energy_per_token_mJ:.1f}", f"{d.energy_per_token_mJ:.1f}", f"{gp.e2e_mean_s:.2f}",
                     f"{d.e2e_mean_s:.2f}", f"{d.decode_only_stage_share:.0%}"))
    parts += [markdown_table(header, rows), END, ""]
    return "\n".join(parts)
