"""The links between devices and the collective library that drives them, as data.

A device reaches its peers in a node over its scale-up port (NVLink into NVSwitch, or direct
peer links) and other nodes over its scale-out port (one NIC per device, rail-optimised). Each
port has a nominal per-direction bandwidth (datasheet) and the fraction of it a collective's data
stream achieves (the library's own bandwidth model). A collective library is a table of
per-(algorithm, protocol) costs in the alpha-beta form NCCL's tuner uses: a base latency per call,
a latency per step on each kind of link, and a bandwidth factor per protocol (LL sends a flag with
every data word, LL128 one flag per 128-byte line, Simple none but synchronises per chunk).
collectives.py turns these into the time of one collective call.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from opbsim.errors import InputError

__all__ = ["Fabric", "Algorithm", "Protocol", "Port", "AlgoCost", "Library", "Interconnect"]


class Fabric(enum.Enum):
    """How a node's scale-up ports connect. SWITCH: every device reaches every other at its full
    port bandwidth (NVSwitch). MESH: a direct link to each peer, the port bandwidth split evenly
    over the node's other devices, so a ring uses one link's share and a direct exchange all."""

    SWITCH = "switch"
    MESH = "mesh"


class Algorithm(enum.Enum):
    RING = "ring"
    TREE = "tree"  # double binary tree across nodes, chain within a node
    NVLS = "nvls"  # in-switch reduction and multicast (NVLink SHARP)
    ONESHOT = "oneshot"  # every device reads all peers' buffers and reduces locally
    TWOSHOT = "twoshot"  # direct reduce-scatter, then direct all-gather
    HIER = "hier"  # intra-node reduce-scatter, inter-node collective on the shards, intra-node all-gather
    DIRECT = "direct"  # all-to-all: every peer at once


class Protocol(enum.Enum):
    LL = "LL"
    LL128 = "LL128"
    SIMPLE = "Simple"


def _check(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
            raise InputError(f"{owner}: {name} must be a finite number, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Port:
    """One device's port into a fabric: ``bw_GBps`` per direction (nominal), of which a
    collective's data stream achieves ``efficiency``; ``energy_pJ_per_bit`` for each bit a device
    sends through it to its peer, end to end (both link ends, and a switch's ports in between)."""

    name: str
    bw_GBps: float
    efficiency: float
    energy_pJ_per_bit: float = 0.0

    def __post_init__(self) -> None:
        _check(f"port {self.name}", bw_GBps=self.bw_GBps, efficiency=self.efficiency,
               energy_pJ_per_bit=self.energy_pJ_per_bit)
        if self.energy_pJ_per_bit < 0:
            raise InputError(f"port {self.name}: energy_pJ_per_bit must be non-negative, "
                             f"got {self.energy_pJ_per_bit!r}")
        if self.bw_GBps <= 0:
            raise InputError(f"port {self.name}: bw_GBps must be positive, got {self.bw_GBps!r}")
        if not 0 < self.efficiency <= 1:
            raise InputError(f"port {self.name}: efficiency must be in (0, 1], got {self.efficiency!r}")

    @property
    def effective_Bps(self) -> float:
        return self.bw_GBps * self.efficiency * 1e9


@dataclass(frozen=True, slots=True, kw_only=True)
class AlgoCost:
    """Cost terms of one (algorithm, protocol): ``base_us`` once per call, ``intra_step_us`` per
    step over a scale-up link, ``inter_step_us`` per step over a scale-out link, and
    ``bw_factor``, the share of the port's effective bandwidth the protocol delivers;
    ``max_size_B`` (0: none) the largest message it takes (a registered staging buffer's size)."""

    algorithm: Algorithm
    protocol: Protocol
    base_us: float
    intra_step_us: float
    inter_step_us: float
    bw_factor: float
    max_size_B: int = 0

    def __post_init__(self) -> None:
        owner = f"collective cost {self.algorithm.value}/{self.protocol.value}"
        _check(owner, base_us=self.base_us, intra_step_us=self.intra_step_us, inter_step_us=self.inter_step_us,
               bw_factor=self.bw_factor)
        if min(self.base_us, self.intra_step_us, self.inter_step_us) < 0:
            raise InputError(f"{owner}: latencies must be non-negative")
        if not 0 < self.bw_factor <= 1:
            raise InputError(f"{owner}: bw_factor must be in (0, 1], got {self.bw_factor!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Library:
    """A collective library: the (algorithm, protocol) pairs it can choose between, with their costs."""

    name: str
    costs: tuple[AlgoCost, ...]
    source: str

    def __post_init__(self) -> None:
        keys = [(c.algorithm, c.protocol) for c in self.costs]
        if len(set(keys)) != len(keys):
            raise InputError(f"library {self.name}: an (algorithm, protocol) pair is listed twice")

    def of(self, algorithm: Algorithm) -> tuple[AlgoCost, ...]:
        return tuple(c for c in self.costs if c.algorithm is algorithm)


@dataclass(frozen=True, slots=True, kw_only=True)
class Interconnect:
    """A device's links: ``scale_up`` to the ``node_devices`` devices of its node over ``fabric``,
    ``scale_out`` to other nodes; ``in_switch_reduction`` when the switch can reduce (NVLS)."""

    scale_up: Port
    scale_out: Port
    fabric: Fabric
    in_switch_reduction: bool
    node_devices: int
    library: Library

    def __post_init__(self) -> None:
        n = self.node_devices
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"interconnect: node_devices must be a positive integer, got {n!r}")
        if self.in_switch_reduction and self.fabric is not Fabric.SWITCH:
            raise InputError("interconnect: in-switch reduction needs a switch fabric")
