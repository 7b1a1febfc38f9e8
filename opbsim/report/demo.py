"""The demo (``opbsim demo``): the main job on an embedded default, into a report folder.

The default (``DEMO``): Mixtral-8x7B on one node of 4 devices (the Duplex paper's Mixtral system;
the model's 87 GiB of weights do not fit one 80 GiB device), served with continuous batching in a
closed loop at batch 64, 64 requests of 1024 prompt and 1024 output tokens, on the H100 GPU
baseline, Duplex (xPU + Logic-PIM) and, where this build has the device and its policy, SN40L. The
throughput curve adds batches 16, 32 and 128. Stage shapes are memoised (stage_timer.py), which is
what keeps the whole job well under a minute on two cores.

The folder holds ``report.md`` (what was simulated, the table, every plot with its caption),
``report.json`` (every number; per device the ``opbsim simulate --json`` object of the headline run
and the arguments that reproduce it), the PNG plots (plots.py) and ``trace_<run>_<stage>.json``,
the Chrome/Perfetto traces of the decode-only and the mixed timeline layer of each run
(``DeviceRun.slug``: ``trace_duplex_decode.json``, or ``trace_duplex_duplex-no-pe_mixed.json``
where a device runs under several policies).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from opbsim.compiler import policy_names
from opbsim.fileio import atomic_write_text
from opbsim.hardware import device_names
from opbsim.report.compare import CompareSettings, Comparison, compare, steps_of
from opbsim.report.compare_render import comparison_json, comparison_markdown
from opbsim.report.plots import PLOTS, write_plots
from opbsim.report.trace import chrome_trace
from opbsim.workloads.parallel import Parallelism

__all__ = ["DEMO", "DemoResult", "demo_settings", "run_demo", "demo_steps", "write_report"]

DEMO = CompareSettings(model="mixtral-8x7b", devices=("h100", "duplex", "sn40l"), parallel=Parallelism(tp=4, etp=4),
                       batch=64, batches=(16, 32, 64, 128), lin=1024, lout=1024, requests_per_slot=1)
_OPTIONAL = {"sn40l": "SN40L"}  # shown when the build has both the device and a policy of that name


@dataclass(frozen=True, slots=True)
class DemoResult:
    comparison: Comparison
    files: tuple[Path, ...]
    notes: tuple[str, ...]
    wall_s: float


def demo_settings() -> tuple[CompareSettings, tuple[str, ...]]:
    """``DEMO`` without the optional devices this build lacks, and a note for each left out."""
    keep, notes = [], []
    for e in DEMO.devices:
        d = e.device
        if d in _OPTIONAL and not (d in device_names() and d in policy_names()):
            notes.append(f"{_OPTIONAL[d]} is not in this build (no `{d}` device preset or policy), so it is not "
                         f"compared.")
            continue
        keep.append(e)
    return replace(DEMO, devices=tuple(keep)), tuple(notes)


def demo_steps() -> int:
    """Progress steps of ``run_demo``: the comparison's and one per plot."""
    return steps_of(demo_settings()[0]) + len(PLOTS)


def write_report(comp: Comparison, out_dir: Path, *, title: str, preamble: str = "", notes: tuple[str, ...] = (),
                 extra_json: dict | None = None, on_step: Callable[[str], None] | None = None) -> tuple[Path, ...]:
    """Write the plots, traces, report.md and report.json of ``comp`` into ``out_dir``;
    ``on_step`` is called after each of the ``len(PLOTS)`` plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = list(write_plots(comp, out_dir, on_step))
    for run in comp.runs:
        for t in run.timelines:
            if t.stats is not None:
                path = out_dir / f"trace_{run.slug}_{t.kind}.json"
                atomic_write_text(path, chrome_trace(t.stats))
                files.append(path)
    if any(r.ok and r.spec.model.fuses_ops for r in comp.runs):
        notes = (*notes, "A dataflow device (SN40L) fuses a decoder layer into spatial kernels that span several op "
                         "classes; the latency breakdown and the timeline split each kernel's time over the classes "
                         "of its ops in proportion to their modelled time.")
    plots = tuple((name, heading, caption) for name, heading, caption, _ in PLOTS)
    md = comparison_markdown(comp, plots, title=title, preamble=preamble, notes=notes)
    md += "Perfetto traces of the timeline layers (open in ui.perfetto.dev): " + \
        ", ".join(f"[{p.name}]({p.name})" for p in files if p.name.startswith("trace_")) + "\n"
    for name, text in (("report.md", md), ("report.json", comparison_json(comp, extra_json))):
        atomic_write_text(out_dir / name, text)
        files.append(out_dir / name)
    return tuple(files)


def run_demo(out_dir: Path, *, on_step: Callable[[str], None] | None = None) -> DemoResult:
    """Run the demo comparison and write its report into ``out_dir``."""
    start = time.perf_counter()
    settings, notes = demo_settings()
    comp = compare(settings, on_step=on_step)
    preamble = ("The demo of opbsim: the embedded default configuration below, run by `opbsim demo`. Every number "
                "comes out of the serving simulation (compiler + discrete-event engine); the same comparison for "
                "any model and devices is `opbsim compare`.")
    title = f"opbsim demo: {comp.model.name} on {', '.join(r.label for r in comp.runs)}"
    files = write_report(comp, out_dir, title=title, preamble=preamble, notes=notes,
                         extra_json={"notes": list(notes)}, on_step=on_step)
    return DemoResult(comp, files, notes, time.perf_counter() - start)
