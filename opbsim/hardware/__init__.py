"""Hardware parameters: device specs (frozen dataclasses), presets with sources, the name registry.

Below the compiler and the emulator, which both read it: the compiler to place and tile, the
emulator to time. It depends only on opbsim.isa.
"""

from opbsim.hardware.registry import device_names, get_device, register
from opbsim.hardware.spec import Channel, ComputeSpec, DeviceSpec, MemorySpec, Path

__all__ = ["Channel", "ComputeSpec", "DeviceSpec", "MemorySpec", "Path", "device_names", "get_device", "register"]
