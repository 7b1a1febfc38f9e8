"""Hardware parameters: frozen dataclasses, units in field names, checked on construction.

A device is a set of execution units, memory spaces, bandwidth channels and access paths. A byte
that unit U moves to or from space S crosses every channel of the path (U, S); streams crossing
the same channel share its bandwidth. Presets live in presets.py, each value with its source.

Energy, by mechanism (emulator/energy.py applies it): a DRAM memory charges ``activate_pJ`` per
row of ``row_B`` bytes opened and ``read_pJ_per_bit`` / ``write_pJ_per_bit`` per bit read from /
written to the open row; every byte then crosses its path's data path at ``datapath_pJ_per_bit``
(in-bank, bank-group bus, TSVs to the logic die, or PHY and interposer to the xPU). A memory with
``row_B`` 0 is on-chip SRAM: no rows. Each unit and memory draws ``static_W`` / ``background_W``
(leakage, clocks, DRAM background and refresh) for as long as the device is on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.hardware.device_model import DeviceModel
from opbsim.hardware.gpu_efficiency import KernelEfficiency
from opbsim.hardware.interconnect import Interconnect
from opbsim.isa.types import Space, Unit

__all__ = ["ComputeSpec", "MemorySpec", "Channel", "Path", "DeviceSpec"]


def _positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise InputError(f"{owner}: {name} must be a positive number, got {value!r}")


def _non_negative(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
            raise InputError(f"{owner}: {name} must be a non-negative number, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeSpec:
    """Throughput of one execution unit (summed over every instance of it on the device).

    ``matrix_TFLOPS`` serves the MATRIX group (2 FLOPs per MAC); ``fp8_matrix_TFLOPS`` serves a
    ``gemm_fp8`` whose both operands are e4m3 (0: the unit has no fp8 tensor path, and such a GEMM runs at
    ``matrix_TFLOPS``); ``vector_TFLOPS`` serves vector
    and fused work; 0 means the unit has no such datapath (a DMA engine). ``issue_ns`` is the fixed
    cost of every instruction that does work (kernel launch or command issue), paid before its
    data streams.
    """

    unit: Unit
    matrix_TFLOPS: float
    vector_TFLOPS: float
    issue_ns: float
    static_W: float = 0.0  # drawn whenever the device is on, busy or not (leakage, clock tree)
    efficiency: KernelEfficiency | None = None  # what its kernels reach of the peaks (None: the peaks)
    fp8_matrix_TFLOPS: float = 0.0

    def __post_init__(self) -> None:
        owner = f"compute unit {self.unit.name.lower()}"
        if self.efficiency is not None and not isinstance(self.efficiency, KernelEfficiency):
            raise InputError(f"{owner}: efficiency must be a KernelEfficiency, got {self.efficiency!r}")
        _non_negative(owner, matrix_TFLOPS=self.matrix_TFLOPS, vector_TFLOPS=self.vector_TFLOPS,
                      issue_ns=self.issue_ns, static_W=self.static_W, fp8_matrix_TFLOPS=self.fp8_matrix_TFLOPS)

    def matrix_peak_TFLOPS(self, fp8: bool) -> float:
        """The matrix peak a GEMM runs at: the fp8 one for an all-e4m3 ``gemm_fp8`` where the unit has it."""
        return self.fp8_matrix_TFLOPS if fp8 and self.fp8_matrix_TFLOPS else self.matrix_TFLOPS


@dataclass(frozen=True, slots=True, kw_only=True)
class MemorySpec:
    """One address space of a device.

    With ``sections`` > 1 the space is split by address into equal sections (Duplex's bank-bundle
    sections); with ``exclusive_sections`` two different units never stream from the same section
    at the same time: the later one waits. An operand of at most ``buffered_B`` bytes is read
    into the unit's buffers once (Duplex's activation vectors) and holds no section.

    Energy: ``row_B`` > 0 makes it a DRAM whose rows cost ``activate_pJ`` each to open (activate
    and precharge); ``read_pJ_per_bit`` / ``write_pJ_per_bit`` are the column access of a bit
    (for SRAM, ``row_B`` 0, the whole access); ``background_W`` its standby and refresh power.
    """

    space: Space
    capacity_B: int
    sections: int = 1
    exclusive_sections: bool = False
    buffered_B: int = 0
    row_B: int = 0
    activate_pJ: float = 0.0
    read_pJ_per_bit: float = 0.0
    write_pJ_per_bit: float = 0.0
    background_W: float = 0.0

    def __post_init__(self) -> None:
        owner = f"memory {self.space.name.lower()}"
        _positive(owner, capacity_B=self.capacity_B, sections=self.sections)
        _non_negative(owner, buffered_B=self.buffered_B, row_B=self.row_B, activate_pJ=self.activate_pJ,
                      read_pJ_per_bit=self.read_pJ_per_bit, write_pJ_per_bit=self.write_pJ_per_bit,
                      background_W=self.background_W)
        if not isinstance(self.row_B, int) or isinstance(self.row_B, bool):
            raise InputError(f"{owner}: row_B must be an integer, got {self.row_B!r}")
        if self.activate_pJ and not self.row_B:
            raise InputError(f"{owner}: activate_pJ needs rows (row_B > 0)")

    @property
    def is_dram(self) -> bool:
        return self.row_B > 0

    def section_of(self, addr_B: int) -> int:
        return min(addr_B * self.sections // self.capacity_B, self.sections - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class Channel:
    """A shared bandwidth resource: a memory interface, the internal TSVs, a link."""

    name: str
    bw_GBps: float

    def __post_init__(self) -> None:
        _positive(f"channel {self.name}", bw_GBps=self.bw_GBps)


@dataclass(frozen=True, slots=True, kw_only=True)
class Path:
    """How ``unit`` reaches ``space``: the channels crossed and the energy of each bit carried
    between the memory's arrays (or SRAM macros) and the unit."""

    unit: Unit
    space: Space
    channels: tuple[str, ...]
    datapath_pJ_per_bit: float

    def __post_init__(self) -> None:
        _non_negative(f"path {self.unit.name.lower()}->{self.space.name.lower()}",
                      datapath_pJ_per_bit=self.datapath_pJ_per_bit)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceSpec:
    """One device. ``interconnect`` is its ports to peers in a node and to other nodes and the
    collective library that drives them (collectives.py times a call). ``model`` is its device model
    (hardware/device_model.py; one of hardware/device_models/), which carries the parameters only
    its kind of device has, times its kernels and chooses its default policy. ``base`` names the
    registered device a device file derived this one from ('' for a preset)."""

    name: str
    units: tuple[ComputeSpec, ...]
    memories: tuple[MemorySpec, ...]
    channels: tuple[Channel, ...]
    paths: tuple[Path, ...]
    flop_energy_pJ: float
    interconnect: Interconnect
    source: str
    model: DeviceModel
    base: str = ""

    def __post_init__(self) -> None:
        owner = f"device {self.name}"
        _non_negative(owner, flop_energy_pJ=self.flop_energy_pJ)
        names = {c.name for c in self.channels}
        for p in self.paths:
            missing = [c for c in p.channels if c not in names]
            if missing:
                raise InputError(f"{owner}: path {p.unit.name.lower()}->{p.space.name.lower()} "
                                 f"uses unknown channel {missing[0]!r}")
            if p.space not in {m.space for m in self.memories}:
                raise InputError(f"{owner}: path to {p.space.name.lower()}, which the device lacks")
        if len({u.unit for u in self.units}) != len(self.units):
            raise InputError(f"{owner}: a unit is listed twice")
        if not isinstance(self.model, DeviceModel):
            raise InputError(f"{owner}: model must be a device model (hardware/device_models), "
                             f"got {str(self.model)[:40]!r}")
        self.model.check(self)

    def compute(self, unit: Unit) -> ComputeSpec:
        for u in self.units:
            if u.unit is unit:
                return u
        raise InputError(f"device {self.name} has no {unit.name.lower()} unit")

    def memory(self, space: Space) -> MemorySpec:
        for m in self.memories:
            if m.space is space:
                return m
        raise InputError(f"device {self.name} has no {space.name.lower()} memory")

    def channels_to(self, space: Space, *, pim: bool = False) -> tuple[str, ...]:
        """The channels of the paths into ``space``: from the PIM unit (``pim``) or from every other
        unit; each once, in path order. Code outside a device's preset names its channels this way."""
        names = (c for p in self.paths if p.space is space and (p.unit is Unit.PIM) == pim for c in p.channels)
        return tuple(dict.fromkeys(names))

    def path(self, unit: Unit, space: Space) -> Path:
        for p in self.paths:
            if p.unit is unit and p.space is space:
                return p
        raise InputError(f"device {self.name}: unit {unit.name.lower()} cannot reach {space.name.lower()}")

    def channel_bytes(self, unit: Unit, bytes_by_space) -> dict[str, int]:
        """Bytes ``unit`` moves over each channel of its paths, for (space, bytes) pairs."""
        out: dict[str, int] = {}
        for space, n in bytes_by_space:
            for c in self.path(unit, space).channels:
                out[c] = out.get(c, 0) + n
        return out

    @property
    def static_W(self) -> float:
        """Power drawn whenever the device is on: every unit's static power and every memory's
        background power."""
        return sum(u.static_W for u in self.units) + sum(m.background_W for m in self.memories)

    @property
    def link_GBps(self) -> float:
        """Nominal per-direction scale-up bandwidth: the capacity of the engine's link channel."""
        return self.interconnect.scale_up.bw_GBps

    def channel_bw_GBps(self, name: str) -> float:
        for c in self.channels:
            if c.name == name:
                return c.bw_GBps
        raise KeyError(name)
