"""The ``pim`` device model: an xPU with processing-in-memory units (Duplex's Logic-PIM, AttAcc's
bank PIM), each running its kernels instruction by instruction. Its devices run the Duplex policy
(arXiv 2409.01141: decode attention and low-Op/B experts on Logic-PIM, the rest on the xPU)."""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.hardware.device_model import DeviceModel
from opbsim.isa.types import Unit

__all__ = ["PIM", "PimModel"]


@dataclass(frozen=True, slots=True)
class PimModel(DeviceModel):
    name = "pim"
    default_policy = "duplex"
    needs = (Unit.PIM,)


PIM = PimModel()
