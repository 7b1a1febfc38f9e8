"""Request routers in front of a cluster of replicas, registered by name.

A router sends a request to a replica only while that replica's occupancy (running requests plus
those sent and not yet admitted) is below its batch limit; otherwise the request waits at the
router. Two kinds:

- static (``round-robin``, ``random``): the replica is a function of the request alone (its
  index; a seeded draw), so each replica sees a fixed sub-stream and the replicas can run
  independently (fleet.py fans them out over processes). A request whose replica is full waits in
  that replica's queue at the router.
- dynamic (``least-outstanding``, ``least-kv``): the replica is chosen at arrival among those
  below their limit, by fewest outstanding requests or by fewest KV-cache tokens held or
  reserved (ties: the lowest index). When every replica is full the request waits in one FIFO
  queue at the router and goes to the first replica that frees a slot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from opbsim.errors import InputError

__all__ = ["RouterPolicy", "ROUTERS", "router_policy", "static_assignment"]


@dataclass(frozen=True, slots=True)
class RouterPolicy:
    """``static``: the replica depends on the request alone (``static_assignment``); otherwise
    ``load`` names the replica attribute to minimise (``occupancy`` or ``kv_tokens``)."""

    name: str
    static: bool
    load: str = ""
    doc: str = ""


ROUTERS: dict[str, RouterPolicy] = {p.name: p for p in (
    RouterPolicy("round-robin", True, doc="request i to replica i mod N"),
    RouterPolicy("random", True, doc="each request to a replica drawn uniformly (seeded)"),
    RouterPolicy("least-outstanding", False, "occupancy", "the replica with the fewest running and queued requests"),
    RouterPolicy("least-kv", False, "kv_tokens", "the replica holding the fewest KV-cache tokens"),
)}


def router_policy(name: str) -> RouterPolicy:
    try:
        return ROUTERS[name]
    except KeyError:
        raise InputError(f"unknown router {name!r}; expected one of {', '.join(ROUTERS)}") from None


def static_assignment(policy: RouterPolicy, requests: int, replicas: int, seed: int) -> np.ndarray:
    """The replica of each request under a static policy (int64 array of ``requests`` entries)."""
    if not policy.static:
        raise InputError(f"router {policy.name} chooses at run time; it has no static assignment")
    if policy.name == "round-robin":
        return np.arange(requests, dtype=np.int64) % replicas
    return np.random.default_rng(np.random.SeedSequence([seed, 0x726F75]).generate_state(2)).integers(
        0, replicas, requests, dtype=np.int64)
