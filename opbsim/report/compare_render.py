"""A device comparison for people and tools: a text table, a markdown report, a JSON object.

The JSON holds, per device, the headline run's metrics exactly as ``opbsim simulate --json``
prints them (``serving``) and the ``opbsim simulate`` arguments that reproduce them
(``simulate_args``), so the two can be checked against each other.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import asdict

from opbsim.report.compare import Comparison, DeviceRun, simulate_args
from opbsim.report.plot_style import subtitle
from opbsim.report.tables import format_table, markdown_table

__all__ = ["HEADER", "table_rows", "failures", "comparison_table", "comparison_json", "comparison_markdown", "baseline"]

HEADER = ("device", "policy", "batch", "tokens/s", "vs baseline", "TBT p50/p90/p99 ms", "TTFT p50 ms", "e2e mean s",
          "energy/token mJ")


def _clean(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _g(value: float, decimals: int = 2) -> str:
    """``decimals`` places for ordinary values, four significant digits for small ones."""
    if not math.isfinite(value):
        return "-"
    return f"{value:.{decimals}f}" if abs(value) >= 10 ** (2 - decimals) or value == 0 else f"{value:.4g}"


def baseline(comp: Comparison) -> DeviceRun | None:
    """The first listed device that ran: speedups are relative to it."""
    return next((r for r in comp.runs if r.ok), None)


def table_rows(comp: Comparison) -> list[tuple[str, ...]]:
    """One row per run, in the order given, named by its label; a run that cannot run says why."""
    base = baseline(comp)
    rows = []
    for run in comp.runs:
        if run.result is None:
            rows.append((run.label, run.policy, "-", "cannot run", *("-",) * (len(HEADER) - 4)))
            continue
        r = run.result
        batch = f"{r.max_batch} (capped)" if r.batch_capped else str(r.max_batch)
        ratio = r.tokens_per_s / base.result.tokens_per_s
        rows.append((run.label, run.policy, batch, _g(r.tokens_per_s, 1), f"{ratio:.2f}x",
                     " / ".join(_g(v) for v in (r.tbt_p50_ms, r.tbt_p90_ms, r.tbt_p99_ms)), _g(r.ttft_p50_ms, 1),
                     _g(r.e2e_mean_s), _g(r.energy_per_token_mJ)))
    return rows


def comparison_table(comp: Comparison) -> str:
    """The summary table for the terminal."""
    base = baseline(comp)
    note = f"baseline: {base.label}" if base else "no device could run this configuration"
    text = f"{subtitle(comp)}, batch {comp.settings.batch} ({note})\n" + format_table(HEADER, table_rows(comp))
    return text + "".join(f"\n{device} cannot run: {why}" for device, why in failures(comp))


def failures(comp: Comparison) -> list[tuple[str, str]]:
    """(label, reason) of every run that could not run, in order."""
    return [(r.label, r.error) for r in comp.runs if not r.ok]


def _device_json(comp: Comparison, run: DeviceRun) -> dict:
    s = comp.settings
    out: dict = {"label": run.label, "device": run.device, "policy": run.policy,
                 "status": "ok" if run.ok else "cannot run", "error": run.error,
                 "simulate_args": simulate_args(s, run.device, run.policy)}
    if run.result is not None:
        out["serving"] = run.result.summary()
        out["energy_mJ_per_token_by_component"] = dict(run.energy_mJ_by_component)
    out["throughput_vs_batch"] = [asdict(p) for p in run.curve]
    out["roofline_stage"] = run.roofline_stage
    out["roofline_ops"] = [{"op": p.name, "class": p.op_class, "kind": p.kind, "op_per_B": p.op_per_B,
                            "flops": p.flops, "unit": p.unit.name.lower(), "time_s": p.time_s,
                            "attained_flop_per_s": p.attained_flop_per_s} for p in run.roofline]
    out["layer_timelines"] = {t.kind: {"stage": t.stage} | ({} if t.stats is None else {
        "time_s": t.stats.time_s,
        "utilisation": {u.name.lower(): t.stats.utilisation(u) for u, _ in t.stats.busy_s_by_unit}})
        for t in run.timelines}
    return out


def comparison_json(comp: Comparison, extra: dict | None = None) -> str:
    """Settings, model and every device's results as one JSON object (NaN as null)."""
    settings = {**asdict(comp.settings), "devices": [str(e) for e in comp.settings.devices]}
    obj = {"model": comp.model.name, "settings": settings, **(extra or {}),
           "devices": [_device_json(comp, r) for r in comp.runs]}
    return json.dumps(_clean(obj), indent=2) + "\n"


def comparison_markdown(comp: Comparison, plots: tuple[tuple[str, str, str], ...], *, title: str,
                        preamble: str = "", notes: tuple[str, ...] = ()) -> str:
    """The report page: what was simulated, the table, each plot (file, title, caption), notes,
    and the ``opbsim simulate`` command behind each row."""
    s = comp.settings
    parts = [f"# {title}", ""]
    if preamble:
        parts += [preamble, ""]
    parts += [
        "## What was simulated", "",
        f"- model: {comp.model.name}; system: {s.nodes} x {s.devices_per_node} devices (nodes x devices per node) "
        "of each kind",
        f"- serving: closed loop, batch {s.batch}, {s.requests(s.batch)} requests of {s.lin} prompt and {s.lout} "
        f"output tokens" + (f" (Gaussian, std {s.lin_std:g} / {s.lout_std:g})" if s.lin_std or s.lout_std else "")
        + f"; at most {s.prefill_chunk} prompt tokens per stage; balanced expert routing; stage shapes memoised "
        f"({s.buckets} buckets per octave)",
        f"- throughput curve: batches {', '.join(map(str, s.curve_batches))}, {s.requests_per_slot} request(s) per "
        f"batch slot",
        "", "## Results", "", markdown_table(HEADER, table_rows(comp)), "",
    ]
    if failures(comp):
        parts += [*[f"- **{d} cannot run**: {why}" for d, why in failures(comp)], ""]
    for name, heading, caption in plots:
        parts += [f"### {heading}", "", caption, "", f"![{heading}]({name})", ""]
    if notes:
        parts += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    parts += ["## Reproduce one row", ""]
    for run in comp.runs:
        parts.append(f"    opbsim simulate {shlex.join(simulate_args(s, run.device, run.policy))}")
    parts.append("")
    return "\n".join(parts) + "\n"
