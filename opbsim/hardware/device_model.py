"""The device-model interface: what a kind of device does beyond the generic streaming engine.

A DeviceSpec names its model (``DeviceSpec.model``, an instance of a ``DeviceModel`` subclass in
hardware/device_models/). The model carries the device-specific parameters only its kind has (the
dataflow model's ``DataflowParams``) and answers, for every layer that times or compiles for the
device:

- ``name``: the model's name (``gpu``, ``pim``, ``dataflow``), shown by ``opbsim devices show``;
- ``needs``: the units a device of this model must have (checked on construction: ``check``);
- ``default_policy``: the compiler policy its devices run unless told otherwise;
- memory and store semantics: ``tiers`` (where the memory plan streams, keeps and spills buffers),
  ``scratch_is_buffer`` (whether a unit's kernel-local intermediates are buffers of their own that
  the memory plan places, rather than kernel-local scratch), ``collective_units`` (the units a
  collective may run on), ``fuses_ops`` (whether one kernel spans several ops);
- kernel timing: ``times_launch`` (whether a launch on a unit is one job) and ``kernel_cost`` (its
  cost, from the ``KernelStage`` numbers of its body; the emulator builds them from each body
  instruction's work: emulator/devices);
- ``knobs``: the hardware parameters it adds to the ``--hw`` vocabulary (hardware/params.py), its
  own parameters by name.

Adding a device model is one file in hardware/device_models/ plus the preset that names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from opbsim.errors import InputError
from opbsim.hardware.collectives import Plan
from opbsim.isa.program import Instruction
from opbsim.isa.types import Space, Unit

if TYPE_CHECKING:
    from opbsim.hardware.params import HwParam
    from opbsim.hardware.spec import DeviceSpec

__all__ = ["DeviceModel", "KernelCost", "KernelStage", "MemoryTiers"]


@dataclass(frozen=True, slots=True)
class KernelCost:
    """``fixed_s``: launch overhead and pipeline fill and drain, paid before the kernel streams.
    ``compute_s``: the least time its streaming phase may take (its slowest stage over all tiles)."""

    fixed_s: float
    compute_s: float


@dataclass(frozen=True, slots=True)
class KernelStage:
    """One body instruction of a kernel as a kernel model sees it: ``compute_s``, its work at the
    full throughput of the launch's unit (the whole socket); ``bytes_by_space`` its reads plus
    writes per space; ``link`` its collective's plan (None: not a collective)."""

    compute_s: float
    bytes_by_space: tuple[tuple[Space, int], ...]
    link: Plan | None = None

    @property
    def total_B(self) -> int:
        return sum(b for _, b in self.bytes_by_space)


@dataclass(frozen=True, slots=True)
class MemoryTiers:
    """Where a memory plan puts buffers: ``main`` holds them; ``stream`` (None: none) holds a
    buffer written and consumed inside one kernel; ``spill`` (None: none) takes what ``main``
    cannot hold, by bandwidth need."""

    main: Space = Space.HBM
    stream: Space | None = None
    spill: Space | None = None


class DeviceModel:
    """The interface; subclasses are frozen dataclasses (their fields: the model's parameters).
    The defaults describe a device whose units run kernels instruction by instruction out of HBM."""

    __slots__ = ()

    name: ClassVar[str]
    default_policy: ClassVar[str]
    needs: ClassVar[tuple[Unit, ...]] = ()
    collective_units: ClassVar[tuple[Unit, ...]] = (Unit.DMA,)
    tiers: ClassVar[MemoryTiers] = MemoryTiers()
    fuses_ops: ClassVar[bool] = False

    def check(self, device: DeviceSpec) -> None:
        """Raise InputError when ``device`` cannot be of this model (a unit it needs is missing)."""
        have = {u.unit for u in device.units}
        for unit in self.needs:
            if unit not in have:
                raise InputError(f"device {device.name}: device model {self.name} needs a {unit.name.lower()} unit")

    def scratch_is_buffer(self, unit: Unit) -> bool:
        """Whether ``unit`` has no kernel-local scratch: each intermediate of a kernel on it is a
        buffer of its own, placed by the memory plan."""
        return False

    def times_launch(self, unit: Unit) -> bool:
        """Whether a launch on ``unit`` is one job timed by ``kernel_cost`` (else its body runs
        instruction by instruction)."""
        return False

    def kernel_cost(self, device: DeviceSpec, launch: Instruction, stages: tuple[KernelStage, ...]) -> KernelCost:
        """The cost of the kernel ``launch`` whose body instructions are ``stages``; only asked
        where ``times_launch(launch.unit)``."""
        raise InputError(f"device model {self.name} times no {launch.unit.name.lower()} kernel as one job")

    def knobs(self) -> dict[str, HwParam]:
        """Hardware parameters of this model's own (name -> parameter), beyond hardware/params.py's."""
        return {}
