"""Pass 2, place: placement policies, registered by name.

Every policy maps an Analysis to a Placement: the unit of every op and the reason, in words.
Rules of the Duplex paper (arXiv 2409.01141; docs/compiler.md):
- non-expert linears (QKV, O, router, dense FFN, LM head) and small vector ops run on the xPU;
- decode attention runs on Logic-PIM; prefill attention on the xPU (they overlap: co-processing).
  The paper's decode attention is GQA's, Op/B = group size (<= 8); where the roofline costs say
  Logic-PIM would be slower than the xPU (MLA's absorbed decode attention: all heads share one latent,
  Op/B near the head count), it runs on the xPU instead, and the reason says so;
- experts: in a decode-only stage on Logic-PIM, in a mixed stage on the xPU; with expert
  co-processing, the greedy split of ``split_experts`` instead, moving whole bank-bundle sections
  of experts so that the two units never contend for one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from opbsim.compiler.analyze import COLLECTIVE_KINDS
from opbsim.compiler.ir import Analysis, OpAnalysis, PlacedOp, Placement
from opbsim.compiler.sn40l import SN40L_POLICIES, place_sn40l
from opbsim.errors import InputError
from opbsim.isa.types import Unit
from opbsim.workloads.ops import Op, OpKind

__all__ = ["POLICIES", "register_policy", "place", "split_experts", "policy_names", "default_policy"]

Policy = Callable[[Analysis], tuple[PlacedOp, ...]]
POLICIES: dict[str, Policy] = {}
_NEEDS: dict[str, tuple[Unit, ...]] = {}


def register_policy(name: str, needs: tuple[Unit, ...] = (Unit.XPU,)) -> Callable[[Policy], Policy]:
    """Register a policy by name; ``needs``: the units a device must have for it."""
    def add(fn: Policy) -> Policy:
        if name in POLICIES:
            raise ValueError(f"policy {name!r} registered twice")
        POLICIES[name] = fn
        _NEEDS[name] = needs
        return fn
    return add


def policy_names() -> list[str]:
    return sorted(POLICIES)


def default_policy(device) -> str:
    """The policy a device runs unless told otherwise: the policy named after it (or after the
    device it derives from) when one exists (``bank-pim``, ``sn40l``), else its device model's
    (``DeviceModel.default_policy``)."""
    for name in (device.name, device.base):
        if name in POLICIES:
            return name
    return device.model.default_policy


def check_policy(device, name: str) -> None:
    """Raise InputError when ``name`` is no policy or needs a unit ``device`` lacks."""
    if name not in POLICIES:
        raise InputError(f"unknown policy {str(name)[:40]!r} (known: {', '.join(policy_names())})")
    for unit in _NEEDS[name]:
        if unit not in {u.unit for u in device.units}:
            raise InputError(f"policy {name} needs a {unit.name.lower()} unit, which device {device.name} lacks")


def place(analysis: Analysis) -> Placement:
    name = analysis.target.policy
    device = analysis.target.device
    check_policy(device, name)
    placed = POLICIES[name](analysis)
    for p in placed:
        if p.unit not in {c.unit for c in p.analysis.costs}:
            raise InputError(f"policy {name} puts {p.op.name} on {p.unit.name.lower()}, which device "
                             f"{device.name} lacks")
    return Placement(analysis.graph, analysis.target, placed)


def _is_expert(op: Op) -> bool:
    return op.kind is OpKind.FFN and "expert" in op.params


def _phase(op: Op) -> str | None:
    return op.params.get("phase") if op.kind is OpKind.ATTENTION else None


def _fixed(a: OpAnalysis) -> PlacedOp | None:
    """Collectives go to the DMA engine whatever the policy."""
    if a.op.kind in COLLECTIVE_KINDS:
        return PlacedOp(a, Unit.DMA, "collective: on the links")
    return None


def _each(analysis: Analysis, rule: Callable[[OpAnalysis], tuple[Unit, str]]) -> tuple[PlacedOp, ...]:
    return tuple(_fixed(a) or PlacedOp(a, *rule(a)) for a in analysis.ops)


@register_policy("xpu-only")
def _xpu_only(analysis: Analysis) -> tuple[PlacedOp, ...]:
    return _each(analysis, lambda a: (Unit.XPU, "xpu-only: the GPU baseline"))


@register_policy("pim-only", needs=(Unit.PIM,))
def _pim_only(analysis: Analysis) -> tuple[PlacedOp, ...]:
    return _each(analysis, lambda a: (Unit.PIM, "pim-only: every op in memory"))


@register_policy("bank-pim", needs=(Unit.XPU, Unit.PIM))
def _bank_pim(analysis: Analysis) -> tuple[PlacedOp, ...]:
    def rule(a: OpAnalysis) -> tuple[Unit, str]:
        if _phase(a.op) == "decode":
            return Unit.PIM, "decode attention offloaded to PIM (AttAcc)"
        return Unit.XPU, "not decode attention: xPU"
    return _each(analysis, rule)


@register_policy("oracle", needs=())
def _oracle(analysis: Analysis) -> tuple[PlacedOp, ...]:
    def rule(a: OpAnalysis) -> tuple[Unit, str]:
        best = a.fastest
        return best.unit, f"fastest by the cost model: {best.time_s * 1e6:.2f} us at Op/B {a.estimates.op_per_B:.1f}"
    return _each(analysis, rule)


def split_experts(experts: Sequence[OpAnalysis], sections: int = 0) -> frozenset[str]:
    """Duplex expert co-processing: the experts (op names) that go to Logic-PIM.

    Start with every expert on the xPU; move the experts with the fewest tokens to Logic-PIM one
    group at a time while max(xPU total, PIM total) keeps falling. With ``sections`` > 0 a group
    is the experts of one HBM bank-bundle section (expert e lives in section e mod sections), so
    the two units never share a section and really run in parallel; groups go in order of their
    token totals. With 0, each expert is its own group (the paper's rule). Ties go by name.
    """
    if sections:
        by_section: dict[int, list[OpAnalysis]] = {}
        for a in experts:
            by_section.setdefault(int(a.op.params["expert"]) % sections, []).append(a)
        groups = sorted(by_section.values(), key=lambda g: (sum(a.op.params["tokens"] for a in g),
                                                          min(a.op.name for a in g)))
    else:
        groups = [[a] for a in sorted(experts, key=lambda a: (a.op.params["tokens"], a.op.name))]
    xpu = sum(a.cost(Unit.XPU).time_s for a in experts)
    pim = 0.0
    moved: list[str] = []
    for group in groups:
        nxt_xpu = xpu - sum(a.cost(Unit.XPU).time_s for a in group)
        nxt_pim = pim + sum(a.cost(Unit.PIM).time_s for a in group)
        if max(nxt_xpu, nxt_pim) >= max(xpu, pim):
            break
        xpu, pim = nxt_xpu, nxt_pim
        moved.extend(a.op.name for a in group)
    return frozenset(moved)


def _sections(analysis: Analysis) -> int:
    """Bank-bundle sections a co-processing split must respect (0: none are exclusive)."""
    from opbsim.isa.types import Space

    hbm = analysis.target.device.memory(Space.HBM)
    return hbm.sections if hbm.exclusive_sections and hbm.sections > 1 else 0


def _duplex(co_process: bool) -> Policy:
    def policy(analysis: Analysis) -> tuple[PlacedOp, ...]:
        decode_only = analysis.graph.stage.is_decode_only
        on_pim: frozenset[str] = frozenset()
        if co_process:
            by_layer: dict[int | None, list[OpAnalysis]] = {}
            for a in analysis.ops:
                if _is_expert(a.op):
                    by_layer.setdefault(a.layer, []).append(a)
            sections = _sections(analysis)
            on_pim = frozenset().union(*(split_experts(v, sections) for v in by_layer.values()))

        def rule(a: OpAnalysis) -> tuple[Unit, str]:
            phase = _phase(a.op)
            if phase == "decode":
                pim, xpu = a.cost(Unit.PIM), a.cost(Unit.XPU)
                if pim.time_s <= xpu.time_s:
                    return Unit.PIM, "decode attention (Op/B = group size): Logic-PIM"
                return Unit.XPU, (f"decode attention at Op/B {a.estimates.op_per_B:.1f} (heads sharing one latent), "
                                  f"compute-bound on Logic-PIM ({pim.time_s * 1e6:.1f} us) and faster on the xPU "
                                  f"({xpu.time_s * 1e6:.1f} us): xPU")
            if phase == "prefill":
                return Unit.XPU, "prefill attention (high Op/B): xPU, overlapping decode attention"
            if _is_expert(a.op):
                if co_process:
                    if a.op.name in on_pim:
                        return Unit.PIM, f"expert co-processing: {a.op.params['tokens']} tokens, to Logic-PIM"
                    return Unit.XPU, f"expert co-processing: {a.op.params['tokens']} tokens, kept on the xPU"
                if decode_only:
                    return Unit.PIM, "expert in a decode-only stage: Logic-PIM"
                return Unit.XPU, "expert in a mixed stage: xPU"
            return Unit.XPU, "non-expert linear or vector op: xPU"
        return _each(analysis, rule)
    return policy


register_policy("duplex", needs=(Unit.XPU, Unit.PIM))(_duplex(co_process=True))
register_policy("duplex-no-pe", needs=(Unit.XPU, Unit.PIM))(_duplex(co_process=False))
for _name in SN40L_POLICIES:
    register_policy(_name, needs=(Unit.PCU,))(place_sn40l)
