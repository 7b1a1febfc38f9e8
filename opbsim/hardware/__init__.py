"""Hardware parameters: device specs (frozen dataclasses), presets with sources, the name registry.

Below the compiler and the emulator, which both read it: the compiler to place and tile, the
emulator to time. It depends only on opbsim.isa.
"""

from opbsim.hardware.device_model import DeviceModel
from opbsim.hardware.device_models.dataflow import DataflowParams
from opbsim.hardware.nodes import NodeSpec, get_node, node_names
from opbsim.hardware.registry import device_names, get_device, register
from opbsim.hardware.spec import Channel, ComputeSpec, DeviceSpec, MemorySpec, Path

__all__ = ["Channel", "ComputeSpec", "DataflowParams", "DeviceModel", "DeviceSpec", "MemorySpec", "NodeSpec", "Path",
           "device_names", "get_device", "get_node", "node_names", "register"]
