"""A cluster of identical replicas behind a request router, serving an open-loop trace.

Each replica is one parallel layout (``Cluster``) running the continuous batching of serving.py
(replica.py). The router (router.py) sends a request to a replica only while that replica is
below its batch limit. Time is shared: one event loop advances every replica stage by stage and
routes arrivals in time order (an arrival at the same moment as a stage boundary is routed first,
as serving.py admits it).

Static routers (round-robin, random) give each replica a fixed sub-stream, so the replicas are
independent: with ``workers`` > 1 (local processes) or a Dask ``scheduler`` they run in groups in
parallel, each group with its own stage-cost memo; the result is identical to one process (tested),
except ``compiled_shapes``, which counts every group's compilations.

Metrics are cluster-wide (every request, every stage of every replica) and per replica; the
duration is time 0 to the last token. TPOT (time per output token) of a request is
(last token - first token) / (output tokens - 1), for requests of more than one output token.
Energy: every replica's stages, plus its devices' static power while it has no stage in flight
until the end of the run.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.replica import Replica
from opbsim.emulator.router import RouterPolicy, router_policy, static_assignment
from opbsim.emulator.stage_timer import Bucketing, StageTimer
from opbsim.errors import InputError
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.traces import Trace

__all__ = ["FleetConfig", "ReplicaRun", "run_group", "simulate_replicas", "timer_for", "assignment_of"]

Dispatch = Callable[[int, int, int, float], None]  # (request, replica, occupancy before, time s)


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetConfig:
    """``replicas`` copies of the layout, each running at most ``batch`` requests (capped by
    capacity); ``router`` a name in router.ROUTERS; ``seed`` seeds the random router;
    ``workers`` local processes for static routers (1: this process); ``scheduler`` a Dask
    address instead; ``buckets`` shape buckets per octave (0: exact stages); ``collapse`` runs
    of identical decode-only stages in one step (replica.py; the same result); ``cuda_graphs`` as
    ServingConfig's."""

    replicas: int
    batch: int
    router: str = "round-robin"
    prefill_chunk_tokens: int = 0
    seed: int = 0
    workers: int = 1
    scheduler: str | None = None
    buckets: int = 8
    overlap: bool = False
    collapse: bool = True  # False: every stage one step of the event loop (the reference for the shortcuts)
    cuda_graphs: bool = True  # decode stages replay CUDA graphs (serving.graphed)

    def __post_init__(self) -> None:
        for name in ("replicas", "batch", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"{name} must be a positive integer, got {v!r}")
        router_policy(self.router)
        n = self.prefill_chunk_tokens
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InputError(f"prefill_chunk_tokens must be an integer >= 0, got {n!r}")
        Bucketing(self.buckets)
        if not isinstance(self.cuda_graphs, bool):
            raise InputError(f"cuda_graphs must be true or false, got {self.cuda_graphs!r}")

    @property
    def policy(self) -> RouterPolicy:
        return router_policy(self.router)


@dataclass(frozen=True, slots=True)
class ReplicaRun:
    """What one replica did: its requests (global indices, ascending), their first- and
    last-token times, busy time and stage costs as (cost, stages, decode tokens)."""

    index: int
    requests: np.ndarray
    first_token_s: np.ndarray
    done_s: np.ndarray
    busy_s: float
    stages: int
    costs: tuple


def timer_for(model: ModelConfig, cluster: Cluster, config: FleetConfig) -> StageTimer:
    return StageTimer(model, cluster, bucketing=Bucketing(config.buckets), overlap=config.overlap)


def simulate_replicas(trace: Trace, policy: RouterPolicy, replicas: int, *, timer: StageTimer, max_batch: int,
                      chunk_tokens: int, assignment: np.ndarray | None = None,
                      on_dispatch: Dispatch | None = None, collapse: bool = True,
                      cuda_graphs: bool = True) -> list[ReplicaRun]:
    """Serve ``trace`` on ``replicas`` replicas in one event loop. ``assignment`` (static
    policies): each request's replica. ``on_dispatch`` is told of every send, with the replica's
    occupancy before it (for tests of the router's contract)."""
    n = len(trace)
    inp = trace.input_tokens.tolist()
    out = trace.output_tokens.tolist()
    first = np.full(n, np.nan)
    done = np.full(n, np.nan)
    memo: dict = {}
    reps = [Replica(timer, max_batch, chunk_tokens, inp, out, first, done, memo=memo, collapse=collapse,
                    cuda_graphs=cuda_graphs) for _ in range(replicas)]
    owner = np.full(n, -1, dtype=np.int64)
    loop = _EventLoop(reps, policy, owner, on_dispatch)
    loop.run(trace.arrival_s.tolist(), None if assignment is None else assignment.tolist())
    runs = []
    for k, rep in enumerate(reps):
        idx = np.flatnonzero(owner == k)
        runs.append(ReplicaRun(k, idx, first[idx], done[idx], rep.busy_s, rep.stage, tuple(rep.cost_records())))
    return runs


class _EventLoop:
    def __init__(self, reps: list[Replica], policy: RouterPolicy, owner: np.ndarray, on_dispatch: Dispatch | None):
        self.reps = reps
        self.policy = policy
        self.owner = owner
        self.on_dispatch = on_dispatch
        self.heap: list[tuple[float, int, int]] = []
        self.seq = 0
        self.scheduled = [False] * len(reps)  # has an entry in the heap (a stage in flight or a start)
        self.waiting: list[deque[int]] = [deque() for _ in reps]  # static: held at the router per replica
        self.shared: deque[int] = deque()  # dynamic: held at the router

    def run(self, arrival: list[float], assignment: list[int] | None) -> None:
        heap, reps, n, i = self.heap, self.reps, len(arrival), 0
        inf = float("inf")
        own: list[list[float]] = [[] for _ in reps]  # static: each replica's arrival times, in order
        if assignment is not None:
            for t, k in zip(arrival, assignment):
                own[k].append(t)
            own = [[*ts, inf] for ts in own]
        nxt = [0] * len(reps)
        while i < n or heap:
            if i < n and (not heap or arrival[i] <= heap[0][0]):
                t = arrival[i]
                if assignment is not None:
                    k = assignment[i]
                    nxt[k] += 1
                    if not self.waiting[k] and reps[k].occupancy < reps[k].max_batch:
                        self._send(i, k, t)
                    else:
                        self.waiting[k].append(i)
                else:
                    k = self._choose()
                    if k < 0:
                        self.shared.append(i)
                    else:
                        self._send(i, k, t)
                i += 1
                continue
            t, _, k = heapq.heappop(heap)  # scheduled[k] stays True: what is sent now joins this start
            rep = reps[k]
            if rep.running:
                rep.finish()
            self._refill(k, t)
            horizon = own[k][nxt[k]] if assignment is not None else (arrival[i] if i < n else inf)
            end = rep.start(t, horizon)
            if end is None:
                self.scheduled[k] = False
            else:
                self._push(end, k)

    def _push(self, t: float, k: int) -> None:
        heapq.heappush(self.heap, (t, self.seq, k))
        self.seq += 1
        self.scheduled[k] = True

    def _send(self, r: int, k: int, t: float) -> None:
        rep = self.reps[k]
        if self.on_dispatch is not None:
            self.on_dispatch(r, k, rep.occupancy, t)
        rep.send(r)
        self.owner[r] = k
        if not self.scheduled[k]:
            self._push(t, k)

    def _choose(self) -> int:
        load = self.policy.load
        best, best_k = None, -1
        for k, rep in enumerate(self.reps):
            if rep.occupancy < rep.max_batch:
                v = getattr(rep, load)
                if best is None or v < best:
                    best, best_k = v, k
        return best_k

    def _refill(self, k: int, t: float) -> None:
        if self.policy.static:
            queue, rep = self.waiting[k], self.reps[k]
            while queue and rep.occupancy < rep.max_batch:
                self._send(queue.popleft(), k, t)
            return
        while self.shared:
            j = self._choose()
            if j < 0:
                return
            self._send(self.shared.popleft(), j, t)


def run_group(model: ModelConfig, cluster: Cluster, config: FleetConfig, max_batch: int, trace: Trace,
              members: list[int], assignment: np.ndarray) -> tuple[list[ReplicaRun], int]:
    """Static routers: the replicas ``members`` (global indices) over their requests of ``trace``,
    in one event loop with one memo; returned with global request and replica indices, and the
    number of shapes the group compiled."""
    mask = np.isin(assignment, members)
    idx = np.flatnonzero(mask)
    local = {g: j for j, g in enumerate(members)}
    sub_assign = np.fromiter((local[g] for g in assignment[idx].tolist()), np.int64, len(idx))
    timer = timer_for(model, cluster, config)
    runs = simulate_replicas(trace.take(idx), config.policy, len(members), timer=timer, max_batch=max_batch,
                             chunk_tokens=config.prefill_chunk_tokens, assignment=sub_assign,
                             collapse=config.collapse, cuda_graphs=config.cuda_graphs)
    return [ReplicaRun(members[r.index], idx[r.requests], r.first_token_s, r.done_s, r.busy_s, r.stages, r.costs)
            for r in runs], timer.compiled_shapes


def assignment_of(config: FleetConfig, requests: int) -> np.ndarray | None:
    policy = config.policy
    return static_assignment(policy, requests, config.replicas, config.seed) if policy.static else None
