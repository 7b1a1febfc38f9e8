"""The ``gpu`` device model: an xPU alone (a GPU), its kernels run instruction by instruction out
of HBM, each intermediate in kernel-local scratch. Its devices run the GPU baseline policy."""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.hardware.device_model import DeviceModel

__all__ = ["GPU", "GpuModel"]


@dataclass(frozen=True, slots=True)
class GpuModel(DeviceModel):
    name = "gpu"
    default_policy = "xpu-only"


GPU = GpuModel()
