"""Device models: what times a device beyond the generic streaming engine, by the name its preset
gives (``DeviceSpec.model``, one of hardware.spec.DEVICE_MODELS).

- ``gpu`` and ``pim``: no kernel model; a launch's body runs instruction by instruction on its unit.
- ``dataflow``: a ``launch`` on a PCU is one spatial pipeline (sn40l.py: ``dataflow_kernel``).
"""

from __future__ import annotations

from types import MappingProxyType

from opbsim.emulator.devices.sn40l import dataflow_kernel
from opbsim.emulator.kernel_models import KernelModel
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Unit

__all__ = ["KERNEL_MODELS", "kernel_model"]

KERNEL_MODELS: MappingProxyType[str, MappingProxyType[Unit, KernelModel]] = MappingProxyType({
    "gpu": MappingProxyType({}),
    "pim": MappingProxyType({}),
    "dataflow": MappingProxyType({Unit.PCU: dataflow_kernel}),
})
"""device model -> the kernel model of each unit it times its own way."""


def kernel_model(device: DeviceSpec, unit: Unit) -> KernelModel | None:
    """The kernel model that times a launch on ``unit`` of ``device``, or None (instruction by instruction)."""
    return KERNEL_MODELS[device.model].get(unit)
