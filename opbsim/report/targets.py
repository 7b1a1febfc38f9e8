"""The papers' published results that ``opbsim reproduce`` checks, declared once.

Each target is the claim as a row names it, the paper's value, the tolerance we allow ourselves
and where the paper states it. The reproduction modules read their values and tolerances from
here, never as literals of their own, so a row, its verdict and its cause sentence cannot
disagree. Nothing here is a model parameter: these numbers only judge.

[D] Duplex, arXiv 2409.01141 (MICRO 2024). [S] SN40L, arXiv 2405.07518. The table of them with our
tolerances: docs/validation.md (written by the commands).
"""

from __future__ import annotations

from dataclasses import dataclass

_COE = "[S] evaluation: Composition of Experts"

__all__ = ["Ratio", "Points", "Range", "Verdict", "Shape", "DUPLEX", "SN40L"]


@dataclass(frozen=True, slots=True)
class Ratio:
    """A value ours must match within ``tolerance`` relative (ours / paper - 1)."""

    claim: str
    paper: float
    tolerance: float
    source: str

    def within(self, ours: float) -> bool:
        return abs(ours / self.paper - 1) <= self.tolerance


@dataclass(frozen=True, slots=True)
class Points:
    """A percentage ours must match within ``tolerance_points`` percentage points."""

    claim: str
    paper_percent: float
    tolerance_points: float
    source: str

    def within(self, ours_percent: float) -> bool:
        return abs(ours_percent - self.paper_percent) <= self.tolerance_points


@dataclass(frozen=True, slots=True)
class Range:
    """Values ours must all fall inside, ``lo`` to ``hi`` inclusive."""

    claim: str
    lo: float
    hi: float
    source: str

    def within(self, ours: float) -> bool:
        return self.lo <= ours <= self.hi


@dataclass(frozen=True, slots=True)
class Verdict:
    """A qualitative result (an ordering, a shape) ours must show: ``paper`` as the row prints it."""

    claim: str
    paper: str
    source: str


@dataclass(frozen=True, slots=True)
class Shape:
    """A latency curve that jumps within ``jump_window`` experts of ``jump_experts`` (the store
    spills) and runs out of memory beyond ``limit_experts`` (within ``limit_tolerance``)."""

    claim: str
    jump_experts: int
    jump_window: int
    limit_experts: int
    limit_tolerance: float
    source: str

    @property
    def paper(self) -> str:
        return f"jumps near {self.jump_experts}; out of memory beyond {self.limit_experts}"

    def within(self, jump: int | None, limit: int) -> bool:
        return (jump is not None and abs(jump - self.jump_experts) <= self.jump_window
                and abs(limit / self.limit_experts - 1) <= self.limit_tolerance)


@dataclass(frozen=True, slots=True)
class _Duplex:
    throughput_max: Ratio = Ratio("throughput vs GPU, Duplex+PE+ET, max over the configurations", 2.67, 0.15,
                                  "[D] evaluation: throughput")
    throughput_mean: Ratio = Ratio("throughput vs GPU, average over the configurations", 2.07, 0.15,
                                   "[D] evaluation: throughput")
    energy_max_glam: Points = Points("energy per token vs GPU, max reduction (GLaM)", -42.03, 8,
                                     "[D] evaluation: energy")
    energy_mean: Points = Points("energy per token vs GPU, average reduction", -28.19, 8, "[D] evaluation: energy")
    latency_max: Ratio = Ratio("end-to-end latency vs GPU, max reduction", 2.57, 0.15, "[D] evaluation: latency")
    mha_ordering: Verdict = Verdict("MHA model (OPT-66B): Bank-PIM vs Duplex", "Bank-PIM faster",
                                    "[D] evaluation: Bank-PIM comparison")
    gqa_ordering: Verdict = Verdict("GQA model (Llama-3-70B): Bank-PIM vs Duplex", "Duplex faster",
                                    "[D] evaluation: Bank-PIM comparison")
    grok_smallest: Verdict = Verdict("Grok-1 (2 nodes): smallest gain of the MoE models", "smallest gain",
                                     "[D] evaluation: inter-node traffic")
    decode_majority: Verdict = Verdict("decode-only stages: the majority of stages in every configuration",
                                       "majority", "[D] motivation: the stage mix of serving")


@dataclass(frozen=True, slots=True)
class _Sn40l:
    switch_h100: Ratio = Ratio("expert switching time vs DGX H100", 15.0, 0.15, _COE)
    switch_a100: Ratio = Ratio("expert switching time vs DGX A100", 31.0, 0.15, _COE)
    coe_h100: Ratio = Ratio("Samba-CoE, 150 experts, TP8, batch 8, 20 tokens: speedup vs DGX H100", 3.7, 0.20, _COE)
    coe_a100: Ratio = Ratio("Samba-CoE, 150 experts, TP8, batch 8, 20 tokens: speedup vs DGX A100", 6.6, 0.20, _COE)
    experts_held: Ratio = Ratio("experts held in one SN40L node at TP8 latency", 850, 0.15, _COE)
    dgx_nodes: Ratio = Ratio("DGX H100 nodes needed for the same experts", 19, 0.15, _COE)
    dgx_shape: Shape = Shape("DGX H100 latency vs number of experts", 50, 10, 150, 0.15, _COE)
    fusion: Range = Range("operator fusion speedup over an unfused baseline (8 sockets)", 2, 13,
                          "[S] evaluation: operator fusion")
    orchestration: Range = Range("hardware- vs software-orchestrated launch, decode", 1.4, 8,
                                 "[S] evaluation: hardware orchestration")
    hbm_share: Points = Points("fused decoder, decode: share of HBM bandwidth achieved", 85, 5,
                               "[S] evaluation: operator fusion")


DUPLEX = _Duplex()
SN40L = _Sn40l()
