"""Nodes: several identical devices with a shared tier that holds what their HBM cannot.

A node runs a model tensor-parallel over its ``devices``. Weights that do not stay in HBM live
in the node's store (SN40L: the sockets' DDR; DGX: host memory) and are copied to HBM at
``copy_GBps``, the node's aggregate store -> HBM bandwidth for one model sharded over every device.

[S] SN40L paper, arXiv 2405.07518. [NV] NVIDIA DGX H100 / DGX A100 datasheets.
"""

from __future__ import annotations

from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.hardware.presets import a100, h100
from opbsim.hardware.sn40l import sn40l
from opbsim.hardware.spec import DeviceSpec
from opbsim.isa.types import Space

__all__ = ["NodeSpec", "get_node", "node_names", "NODES"]


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    """``devices`` x ``device``; ``store_space`` (DDR or HOST) holds ``store_B`` bytes in all."""

    name: str
    device: DeviceSpec
    devices: int
    store_space: Space
    store_B: int
    copy_GBps: float
    source: str

    def __post_init__(self) -> None:
        owner = f"node {self.name}"
        if not isinstance(self.devices, int) or self.devices < 1:
            raise InputError(f"{owner}: devices must be a positive integer, got {self.devices!r}")
        for name in ("store_B", "copy_GBps"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise InputError(f"{owner}: {name} must be a positive number, got {value!r}")
        if self.store_space not in (Space.DDR, Space.HOST):
            raise InputError(f"{owner}: the store must be ddr or host memory, got {self.store_space.name.lower()}")

    @property
    def hbm_B(self) -> int:
        """HBM of all the node's devices together."""
        return self.devices * self.device.memory(Space.HBM).capacity_B


_SN40L_NODE = NodeSpec(
    name="sn40l",
    device=sn40l,
    devices=8,  # [S] 8 sockets per node
    store_space=Space.DDR,
    store_B=8 * sn40l.memory(Space.DDR).capacity_B,  # derived: 8 x 1.5 TiB
    copy_GBps=1000.0,  # assumed: [S] says DDR -> HBM runs "over 1 TB/s" across the node; its lower bound
    source="SN40L paper [S]: 8-socket node, DDR -> HBM over 1 TB/s",
)

_DGX_H100 = NodeSpec(
    name="dgx-h100",
    device=h100,
    devices=8,  # [NV]
    store_space=Space.HOST,
    store_B=8 * h100.memory(Space.HOST).capacity_B,  # derived from the h100 preset: 2 TiB (assumed there)
    copy_GBps=64.0,  # [S] host -> GPU in a DGX H100
    source="SN40L paper [S] DGX H100 baseline; NVIDIA DGX H100 datasheet",
)

_DGX_A100 = NodeSpec(
    name="dgx-a100",
    device=a100,
    devices=8,  # [NV]
    store_space=Space.HOST,
    store_B=8 * a100.memory(Space.HOST).capacity_B,  # derived from the a100 preset: 2 TiB (assumed there)
    copy_GBps=32.0,  # [S] host -> GPU in a DGX A100
    source="SN40L paper [S] DGX A100 baseline; NVIDIA DGX A100 datasheet",
)

NODES: dict[str, NodeSpec] = {n.name: n for n in (_SN40L_NODE, _DGX_H100, _DGX_A100)}


def node_names() -> list[str]:
    return sorted(NODES)


def get_node(name: str) -> NodeSpec:
    try:
        return NODES[name]
    except KeyError:
        raise InputError(f"unknown node {name!r} (known: {', '.join(node_names())})") from None
