"""Energy by component, for people: the labels and order every table and plot uses.

The components are the mechanisms of emulator/energy.py (``COMPONENTS``): compute, DRAM row
activations, DRAM column accesses, the DRAM data path (in-bank, bank-group bus, TSVs to the logic
die, or PHY and interposer to the xPU), on-chip SRAM and PIM buffers, static power (leakage,
clocks, DRAM background and refresh, over all simulated time) and the links. A serving run
carries them per output token (``ServingResult.energy_breakdown_mJ_per_token``), summing to its
energy per token; one program's come from the engine (``energy_J_by_component``).
"""

from __future__ import annotations

from opbsim.emulator.energy import COMPONENTS
from opbsim.emulator.engine import run
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Program

__all__ = ["COMPONENTS", "COMPONENT_LABEL", "energy_J_by_component", "breakdown_text"]

COMPONENT_LABEL = {
    "compute": "compute (MACs, vector ops)",
    "dram_activation": "DRAM row activations",
    "dram_column": "DRAM column reads/writes",
    "dram_datapath": "DRAM data path (bank to unit)",
    "sram": "on-chip SRAM, PIM buffers",
    "static": "static (leakage, DRAM background)",
    "interconnect": "links (NVLink, network)",
}


def energy_J_by_component(program: Program, device: DeviceSpec) -> dict[str, float]:
    """Joules of one run of ``program`` on ``device`` by component, the static energy of its
    makespan included (zero parts left out)."""
    return {k: v for k, v in run(program, device).energy.items().items() if v}


def breakdown_text(parts: dict[str, float], unit: str = "mJ") -> str:
    """``compute 12.0, dram_activation 1.6, ...`` with each part's share of the total."""
    total = sum(parts.values())
    return ", ".join(f"{k} {v:.1f} {unit} ({v / total:.0%})" for k, v in parts.items() if v) if total else "0"
