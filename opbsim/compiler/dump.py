"""Text renderings of every intermediate form, for ``--dump-after PASS`` and ``--explain``."""

from __future__ import annotations

from opbsim.compiler.ir import Analysis, Compiled, Kernels, Placement, Schedule
from opbsim.isa.asm import disassemble

__all__ = ["dump", "explain"]


def _analysis(a: Analysis) -> str:
    lines = [f"; analyze: {len(a.ops)} ops on {a.target.device.name}",
             f"{'op':<28} {'kind':<12} {'GFLOP':>9} {'MB':>9} {'Op/B':>8}  cost per unit (us)"]
    for o in a.ops:
        costs = "  ".join(f"{c.unit.name.lower()} {c.time_s * 1e6:.2f}" for c in o.costs)
        lines.append(f"{o.op.name:<28} {o.op.kind.value:<12} {o.estimates.flops / 1e9:>9.3f} "
                     f"{o.estimates.bytes_B / 1e6:>9.3f} {o.estimates.op_per_B:>8.2f}  {costs}")
    return "\n".join(lines) + "\n"


def explain(p: Placement) -> str:
    lines = [f"; place: policy {p.target.policy} on {p.target.device.name}",
             f"{'op':<28} {'Op/B':>8}  {'unit':<5} why"]
    for o in p.ops:
        lines.append(f"{o.op.name:<28} {o.analysis.estimates.op_per_B:>8.2f}  {o.unit.name.lower():<5} {o.reason}")
    return "\n".join(lines) + "\n"


def _kernels(k: Kernels) -> str:
    lines = [f"; tile: {len(k.kernels)} kernels, {sum(len(x.drafts) for x in k.kernels)} instructions"]
    for x in k.kernels:
        mnemonics = ", ".join(d.mnemonic for d in x.drafts[:6]) + (" ..." if len(x.drafts) > 6 else "")
        lines.append(f"{x.op:<28} {x.unit.name.lower():<4} {len(x.drafts):>5} instr  [{mnemonics}]")
    return "\n".join(lines) + "\n"


def _schedule(s: Schedule) -> str:
    lines = [f"; schedule: {len(s.steps)} steps"]
    for st in s.steps:
        waits = " ".join(f"wait({t})" for _, t in st.waits)
        signals = " ".join(f"signal({t})" for t in st.signals)
        lines.append(f"{waits:<20} {st.kernel.unit.name.lower():<4} {st.kernel.op:<28} {signals}".rstrip())
    return "\n".join(lines) + "\n"


def dump(ir) -> str:
    if isinstance(ir, Analysis):
        return _analysis(ir)
    if isinstance(ir, Placement):
        return explain(ir)
    if isinstance(ir, Kernels):
        return _kernels(ir)
    if isinstance(ir, Schedule):
        return _schedule(ir)
    if isinstance(ir, Compiled):
        return disassemble(ir.program)
    raise TypeError(type(ir))
