"""The time of one collective call, from the mechanisms of each algorithm.

Every algorithm is an alpha-beta model: ``latency = base + steps x per-step latency`` (a step over
a scale-out link costs the inter-node step latency) and ``transfer = bytes on the busiest port /
(the port's effective bandwidth x the protocol's bandwidth factor)``, summed over phases that run
one after the other. ``plan`` evaluates every (algorithm, protocol) pair the library offers that
suits the fabric and the group, and picks the fastest, as NCCL's tuner does.

Sizes follow nccl-tests: all-reduce and reduce-scatter ``size_B`` is one device's input, all-gather
one device's output, all-to-all one device's send buffer (``devices`` equal chunks). A group of
``n`` devices fills nodes of ``node_devices`` in order: ``l = min(n, node_devices)`` per node over
``m = n / l`` nodes (rank order puts tensor parallelism innermost).

Per device and direction, with S the size and B a port's effective bandwidth (derivations in
tests/unit/hardware/test_collectives.py):
- ring all-reduce: 2(n-1) steps, 2(n-1)/n S at the slower of the two ports in the ring;
- tree all-reduce: 2((l-1) + ceil(log2 m)) steps (chain in a node, double binary tree across
  nodes), 2 S at the slower port (each half of the data climbs one tree and comes back down);
- NVLS all-reduce (one node, switch that reduces): 2 steps (reduce-load, multicast store),
  (n+1)/n S: each device's buffer is read once by the switch and its reduced share stored once,
  and every device receives all n reduced shares;
- one-shot all-reduce (one node): 1 step, every device reads the n-1 peers' buffers: (n-1) S;
- two-shot all-reduce (one node): 2 steps, direct reduce-scatter then all-gather: 2(n-1)/n S;
- hierarchical all-reduce (several nodes): ring reduce-scatter in the node ((l-1)/l S), ring
  all-reduce of the 1/l shard across nodes (2(m-1)/m S/l on the scale-out port), ring all-gather;
- ring all-gather / reduce-scatter: n-1 steps, (n-1)/n S; hierarchical: the inter-node phase on
  1/l of the data ((m-1)/m S/l), the intra-node phase on all of it ((l-1)/l S);
- all-to-all: one step to every peer at once; (l-1)/n S to the node's peers over scale-up and
  (n-l)/n S over scale-out, concurrently.
On a MESH fabric a ring uses one peer link (1/(l-1) of the port); direct algorithms use all.

Each plan also says how many payload bytes one device sends over each of its ports (``up_B``,
``out_B``: what the link energy is charged on; protocol flags are not counted). A ring or tree
that spans nodes crosses a node boundary on one hop in ``l`` (rings start on every rail), so a
device sends 1/l of its volume over scale-out and the rest over scale-up.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

from opbsim.errors import InputError
from opbsim.hardware.interconnect import AlgoCost, Algorithm, Fabric, Interconnect, Protocol

__all__ = ["Collective", "Plan", "group_layout", "candidates", "plan", "bus_factor"]


class Collective(enum.Enum):
    ALLREDUCE = "allreduce"
    ALLGATHER = "allgather"
    REDUCESCATTER = "reducescatter"
    ALLTOALL = "alltoall"


@dataclass(frozen=True, slots=True)
class Plan:
    """One way to run a collective and its predicted time, in seconds."""

    collective: Collective
    algorithm: Algorithm
    protocol: Protocol
    devices: int
    nodes: int
    size_B: int
    latency_s: float
    transfer_s: float
    up_B: float = 0.0  # payload bytes one device sends over its scale-up port
    out_B: float = 0.0  # ... and over its scale-out port

    @property
    def time_s(self) -> float:
        return self.latency_s + self.transfer_s

    @property
    def name(self) -> str:
        return f"{self.algorithm.value}/{self.protocol.value}"


def bus_factor(collective: Collective, devices: int) -> float:
    """nccl-tests' bus bandwidth = algorithm bandwidth (size / time) x this factor."""
    n = devices
    return {Collective.ALLREDUCE: 2 * (n - 1) / n, Collective.ALLGATHER: (n - 1) / n,
            Collective.REDUCESCATTER: (n - 1) / n, Collective.ALLTOALL: (n - 1) / n}[collective]


def group_layout(ic: Interconnect, devices: int) -> tuple[int, int]:
    """(devices per node, nodes) of a group of ``devices``, packed into nodes in rank order."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 2:
        raise InputError(f"a collective group needs at least 2 devices, got {devices!r}")
    local = min(devices, ic.node_devices)
    if devices % local:
        raise InputError(f"a group of {devices} devices does not fill nodes of {ic.node_devices} evenly")
    return local, devices // local


class _Ctx:
    """The per-call quantities every algorithm uses."""

    def __init__(self, ic: Interconnect, collective: Collective, size_B: int, devices: int):
        if isinstance(size_B, bool) or not isinstance(size_B, int) or size_B < 0:
            raise InputError(f"collective size must be a non-negative integer of bytes, got {size_B!r}")
        self.ic, self.collective, self.S, self.n = ic, collective, float(size_B), devices
        self.size_B = size_B
        self.l, self.m = group_layout(ic, devices)
        self.up = ic.scale_up.effective_Bps
        self.out = ic.scale_out.effective_Bps
        mesh_share = 1 / (self.l - 1) if ic.fabric is Fabric.MESH and self.l > 1 else 1.0
        self.ring_up = self.up * mesh_share

    def ring_bw(self) -> float:
        return self.ring_up if self.m == 1 else min(self.ring_up, self.out)

    def make(self, c: AlgoCost, intra_steps: float, inter_steps: float, transfer_B_per_Bps: float,
             up_B: float, out_B: float = 0.0) -> Plan:
        latency_us = c.base_us + intra_steps * c.intra_step_us + inter_steps * c.inter_step_us
        return Plan(self.collective, c.algorithm, c.protocol, self.n, self.m, self.size_B, latency_us * 1e-6,
                    transfer_B_per_Bps / c.bw_factor, up_B, out_B)

    def ring_split(self, volume_B: float) -> tuple[float, float]:
        """(scale-up, scale-out) bytes of a ring or tree moving ``volume_B`` per device."""
        return (volume_B, 0.0) if self.m == 1 else (volume_B * (1 - 1 / self.l), volume_B / self.l)


def _ring(x: _Ctx, c: AlgoCost) -> Plan:
    n, m, S = x.n, x.m, x.S
    if x.collective is Collective.ALLREDUCE:
        steps, inter, volume = 2 * (n - 1), 2 * (m - 1), 2 * (n - 1) / n * S
    else:
        steps, inter, volume = n - 1, m - 1, (n - 1) / n * S
    return x.make(c, steps - inter, inter, volume / x.ring_bw(), *x.ring_split(volume))


def _tree(x: _Ctx, c: AlgoCost) -> Plan:
    inter = 2 * math.ceil(math.log2(x.m)) if x.m > 1 else 0
    return x.make(c, 2 * (x.l - 1), inter, 2 * x.S / x.ring_bw(), *x.ring_split(2 * x.S))


def _nvls(x: _Ctx, c: AlgoCost) -> Plan:
    volume = (x.n + 1) / x.n * x.S
    return x.make(c, 2, 0, volume / x.up, volume)


def _oneshot(x: _Ctx, c: AlgoCost) -> Plan:
    volume = (x.n - 1) * x.S
    return x.make(c, 1, 0, volume / x.up, volume)


def _twoshot(x: _Ctx, c: AlgoCost) -> Plan:
    volume = 2 * (x.n - 1) / x.n * x.S
    return x.make(c, 2, 0, volume / x.up, volume)


def _hier(x: _Ctx, c: AlgoCost) -> Plan:
    local, m, S = x.l, x.m, x.S
    intra = (local - 1) / local * S / x.ring_up
    cross = (m - 1) / m * S / local / x.out
    up_B, out_B = (local - 1) / local * S, (m - 1) / m * S / local
    if x.collective is Collective.ALLREDUCE:
        return x.make(c, 2 * (local - 1), 2 * (m - 1), 2 * intra + 2 * cross, 2 * up_B, 2 * out_B)
    return x.make(c, local - 1, m - 1, intra + cross, up_B, out_B)


def _direct(x: _Ctx, c: AlgoCost) -> Plan:
    n, local, S = x.n, x.l, x.S
    up_B, out_B = (local - 1) / n * S, (n - local) / n * S
    transfer = max(up_B / x.up, out_B / x.out)
    return x.make(c, 1, 1 if x.m > 1 else 0, transfer, up_B, out_B)


def _applicable(x: _Ctx, algorithm: Algorithm) -> bool:
    one_node, coll = x.m == 1, x.collective
    if coll is Collective.ALLTOALL:
        return algorithm is Algorithm.DIRECT
    if algorithm is Algorithm.RING:
        return True
    if algorithm is Algorithm.HIER:
        return not one_node
    if coll is not Collective.ALLREDUCE:
        return False
    if algorithm is Algorithm.TREE:
        return True
    if algorithm is Algorithm.NVLS:
        return one_node and x.ic.in_switch_reduction
    return one_node and algorithm in (Algorithm.ONESHOT, Algorithm.TWOSHOT)


_MODELS = {Algorithm.RING: _ring, Algorithm.TREE: _tree, Algorithm.NVLS: _nvls, Algorithm.ONESHOT: _oneshot,
           Algorithm.TWOSHOT: _twoshot, Algorithm.HIER: _hier, Algorithm.DIRECT: _direct}


def candidates(ic: Interconnect, collective: Collective, size_B: int, devices: int) -> tuple[Plan, ...]:
    """Every (algorithm, protocol) of ``ic.library`` that can run this call, with its time."""
    x = _Ctx(ic, collective, size_B, devices)
    out = tuple(_MODELS[c.algorithm](x, c) for c in ic.library.costs
                if _applicable(x, c.algorithm) and (not c.max_size_B or size_B <= c.max_size_B))
    if not out:
        raise InputError(f"library {ic.library.name} has no algorithm for {collective.value} over {devices} devices")
    return out


def plan(ic: Interconnect, collective: Collective, size_B: int, devices: int) -> Plan:
    """The fastest candidate (the first listed among equals)."""
    return min(candidates(ic, collective, size_B, devices), key=lambda p: p.time_s)

