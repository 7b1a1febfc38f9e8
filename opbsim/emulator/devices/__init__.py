"""Kernel timing by device model: a launch whose unit the device's model times as one job
(``DeviceModel.times_launch``; hardware/device_model.py) is costed by the model from the
``KernelStage`` numbers of its body, which the emulator derives here from each body instruction's
work. Every other launch's body runs instruction by instruction on its unit."""

from __future__ import annotations

from collections.abc import Sequence

from opbsim.emulator.kernel_models import KernelModel
from opbsim.emulator.work import Work, compute_s, link_plan
from opbsim.hardware.device_model import KernelCost, KernelStage
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Instruction
from opbsim.isa.types import Unit

__all__ = ["kernel_model", "kernel_stages"]


def kernel_stages(device: DeviceSpec, launch: Instruction, works: Sequence[Work]) -> tuple[KernelStage, ...]:
    """Each body instruction's work as its device model sees it: its compute time at the full
    throughput of the launch's unit, its bytes per space, its collective's plan."""
    return tuple(KernelStage(compute_s(device, launch, w), w.bytes_by_space, link_plan(device, w)) for w in works)


def _by_model(device: DeviceSpec, launch: Instruction, body: tuple[Instruction, ...],
              works: tuple[Work, ...]) -> KernelCost:
    return device.model.kernel_cost(device, launch, kernel_stages(device, launch, works))


def kernel_model(device: DeviceSpec, unit: Unit) -> KernelModel | None:
    """The kernel model that times a launch on ``unit`` of ``device``, or None (instruction by instruction)."""
    return _by_model if device.model.times_launch(unit) else None
