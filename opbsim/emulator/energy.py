"""Energy by physical mechanism: what each instruction's work costs, and what time costs.

An instruction of unit U pays (hardware/spec.py holds the parameters, presets.py their sources):
- ``compute``: every FLOP (matrix and vector) at the device's ``flop_energy_pJ``;
- per access stream (access.py) into a DRAM space: ``dram_activation``, the rows the stream opens
  x the memory's ``activate_pJ``; ``dram_column``, its bits x ``read_pJ_per_bit`` (a read) or
  ``write_pJ_per_bit`` (a write: outputs, KV-cache stores); ``dram_datapath``, its bits x the
  ``datapath_pJ_per_bit`` of the path from U to that space (in-bank for Bank-PIM, the bank-group
  bus for BankGroup-PIM, the TSVs to the logic die for Logic-PIM, PHY and interposer for the xPU);
- per stream into on-chip SRAM or PIM buffers: ``sram``, its bits x (access + data path);
- for a collective: ``interconnect``, the payload bytes the collective library's plan sends from
  this device over each port (collectives.py) x 8 x that port's ``energy_pJ_per_bit``.
Time pays ``static``: the device's ``static_W`` (units' leakage and clocks, DRAM background and
refresh) for every second it is on, busy or waiting: the engine over a program's makespan, the
stage timer over a stage's wall-clock time, the serving loop over the idle gaps between stages.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from opbsim.emulator.work import Work, link_plan
from opbsim.hardware.collectives import Plan
from opbsim.hardware.interconnect import Interconnect
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Unit

__all__ = ["COMPONENTS", "EnergyParts", "work_energy", "static_energy", "link_energy", "plan_energy"]

_PJ = 1e-12


@dataclass(frozen=True, slots=True)
class EnergyParts:
    """Joules by component; ``total_J`` is their sum (the identity the tests check)."""

    compute: float = 0.0
    dram_activation: float = 0.0
    dram_column: float = 0.0
    dram_datapath: float = 0.0
    sram: float = 0.0
    static: float = 0.0
    interconnect: float = 0.0

    @property
    def total_J(self) -> float:
        return sum(self.items().values())

    @property
    def dynamic_J(self) -> float:
        return self.total_J - self.static

    def items(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in COMPONENTS}

    def __add__(self, other: EnergyParts) -> EnergyParts:
        return EnergyParts(*(getattr(self, n) + getattr(other, n) for n in COMPONENTS))

    def scaled(self, k: float) -> EnergyParts:
        return EnergyParts(*(getattr(self, n) * k for n in COMPONENTS))


COMPONENTS = tuple(f.name for f in fields(EnergyParts))  # in field order (the constructor's)


def work_energy(device: DeviceSpec, unit: Unit, work: Work) -> EnergyParts:
    """The dynamic energy of ``work`` done by ``unit`` on one device (no static part)."""
    act = column = datapath = sram = 0.0
    for st in work.streams:
        mem = device.memory(st.space)
        bits = st.nbytes * 8
        path_pJ = device.path(unit, st.space).datapath_pJ_per_bit
        access_pJ = mem.write_pJ_per_bit if st.write else mem.read_pJ_per_bit
        if mem.is_dram:
            act += st.rows(mem.row_B) * mem.activate_pJ
            column += bits * access_pJ
            datapath += bits * path_pJ
        else:
            sram += bits * (access_pJ + path_pJ)
    flops = work.matrix_flops + work.vector_flops
    return EnergyParts(compute=flops * device.flop_energy_pJ * _PJ, dram_activation=act * _PJ,
                       dram_column=column * _PJ, dram_datapath=datapath * _PJ, sram=sram * _PJ,
                       interconnect=link_energy(device, work))


def link_energy(device: DeviceSpec, work: Work) -> float:
    """Joules one device spends on the links for ``work``'s collective (0: not a collective)."""
    p = link_plan(device, work)
    return 0.0 if p is None else plan_energy(device.interconnect, p)


def plan_energy(ic: Interconnect, p: Plan) -> float:
    """Joules one device spends sending its bytes of collective plan ``p`` over ``ic``'s ports."""
    return 8 * (p.up_B * ic.scale_up.energy_pJ_per_bit + p.out_B * ic.scale_out.energy_pJ_per_bit) * _PJ


def static_energy(device: DeviceSpec, seconds: float) -> EnergyParts:
    """What one device draws while on for ``seconds``, busy or not."""
    return EnergyParts(static=device.static_W * seconds)
