"""Per-unit kernel timing models: how a ``launch`` on a unit is timed when the unit's kernels are
not a sequence of independent instructions (an SN40L dataflow pipeline).

The engine asks for the launch's unit's kernel model (emulator/devices: ``kernel_model``, from the
device's model) when it meets a launch. With none, the body's instructions run
one after another on the unit (xPU and PIM kernels). With a model, the
launch and its body become one job: it streams the body's bytes over the device's channels (shared
with every other stream, as any instruction's), never faster than ``KernelCost.compute_s``, after
paying ``KernelCost.fixed_s``. A model returns times only; it never sees values.
"""

from __future__ import annotations

from collections.abc import Callable

from opbsim.emulator.work import Work
from opbsim.hardware.device_model import KernelCost
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.program import Instruction

__all__ = ["KernelCost", "KernelModel"]


KernelModel = Callable[[DeviceSpec, Instruction, tuple[Instruction, ...], tuple[Work, ...]], KernelCost]
"""(device, the launch, its body instructions, their work) -> the kernel's cost."""
