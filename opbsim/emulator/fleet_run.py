"""``simulate_fleet``: a trace on a cluster of replicas (fleet.py), fanned out where the router
allows, and its cluster-wide and per-replica metrics (definitions in fleet.py's docstring and
docs/serving.md)."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
from dataclasses import dataclass

import numpy as np

from opbsim.emulator.cluster import Cluster
from opbsim.emulator.dask_client import open_client
from opbsim.emulator.energy import EnergyParts, static_energy
from opbsim.emulator.fleet import (
    Dispatch,
    FleetConfig,
    ReplicaRun,
    assignment_of,
    run_group,
    simulate_replicas,
    timer_for,
)
from opbsim.emulator.serving import capacity_of
from opbsim.emulator.serving_metrics import percentile, weighted_percentile
from opbsim.emulator.stage_timer import StageTimer
from opbsim.errors import InputError
from opbsim.workloads.models import ModelConfig
from opbsim.workloads.traces import Trace

__all__ = ["FleetResult", "ReplicaSummary", "simulate_fleet"]



@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaSummary:
    replica: int
    requests: int
    output_tokens: int
    stages: int
    busy_share: float  # stage time / run duration
    tokens_per_s: float  # its output tokens / the run's duration
    tbt_p99_ms: float
    ttft_p50_ms: float
    ttft_p99_ms: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetResult:
    """Cluster-wide metrics of a trace served by ``replicas`` replicas (units in the names)."""

    model: str
    device: str
    policy: str
    parallel: str
    replicas: int
    router: str
    trace: str
    requests: int
    max_batch: int
    capacity_batch: int
    output_tokens: int
    duration_s: float
    tokens_per_s: float
    tokens_per_s_per_replica: float
    requests_per_s: float  # offered: requests / last arrival
    served_requests_per_s: float  # requests / duration
    tbt_p50_ms: float
    tbt_p90_ms: float
    tbt_p99_ms: float
    ttft_p50_ms: float
    ttft_p90_ms: float
    ttft_p99_ms: float
    tpot_p50_ms: float
    tpot_p99_ms: float
    e2e_p50_s: float
    e2e_p99_s: float
    energy_J: float
    energy_per_token_mJ: float
    stages: int
    compiled_shapes: int
    per_replica: tuple[ReplicaSummary, ...]

    def summary(self) -> dict[str, object]:
        """Every metric by name, per-replica rows as a list of objects (``--json``)."""
        out: dict[str, object] = {n: getattr(self, n) for n in self.__dataclass_fields__ if n != "per_replica"}
        out["per_replica"] = [{n: getattr(r, n) for n in r.__dataclass_fields__} for r in self.per_replica]
        return out


def _capacity(model: ModelConfig, cluster: Cluster, trace: Trace) -> int:
    capacity = capacity_of(model, cluster, trace.longest_context_tokens)
    longest = int((trace.input_tokens + trace.output_tokens - 1).max())
    if model.learned_positions and longest > model.learned_positions:
        raise InputError(f"a request reaches {longest} tokens, past the {model.learned_positions} learned positions "
                         f"of {model.name}")
    return capacity


def simulate_fleet(model: ModelConfig, cluster: Cluster, trace: Trace, config: FleetConfig, *,
                   on_dispatch: Dispatch | None = None, timer: StageTimer | None = None) -> FleetResult:
    """Serve ``trace`` on ``config.replicas`` replicas of ``cluster``. Deterministic; for static
    routers the same whatever ``workers`` or ``scheduler`` (``on_dispatch`` needs one process).
    ``timer`` (made by ``fleet.timer_for`` for this model, cluster and config) may be shared
    between in-process runs to reuse its memo."""
    capacity = _capacity(model, cluster, trace)
    max_batch = min(config.batch, capacity)
    assignment = assignment_of(config, len(trace))
    groups = _groups(config)
    if assignment is None or len(groups) == 1 or on_dispatch is not None:
        timer = timer or timer_for(model, cluster, config)
        runs = simulate_replicas(trace, config.policy, config.replicas, timer=timer, max_batch=max_batch,
                                 chunk_tokens=config.prefill_chunk_tokens, assignment=assignment,
                                 on_dispatch=on_dispatch, collapse=config.collapse,
                                 cuda_graphs=config.cuda_graphs)
        shapes = timer.compiled_shapes
    else:
        common = (model, cluster, config, max_batch, trace)
        parts = _dask(common, groups, assignment, config.scheduler) if config.scheduler else \
            _local([(*common, g, assignment) for g in groups], len(groups))
        runs = sorted((r for rs, _ in parts for r in rs), key=lambda r: r.index)
        shapes = sum(n for _, n in parts)
    return _result(model, cluster, trace, config, runs, max_batch, capacity, shapes)


def _groups(config: FleetConfig) -> list[list[int]]:
    """Contiguous replica groups, one per worker (a Dask run: one per replica, up to 64 groups)."""
    n = config.replicas
    w = min(n, 64 if config.scheduler else config.workers)
    return [list(range(n * i // w, n * (i + 1) // w)) for i in range(w)]


def _run_group(args: tuple) -> tuple[list[ReplicaRun], int]:
    return run_group(*args)


def _local(args: list[tuple], workers: int) -> list[tuple[list[ReplicaRun], int]]:
    ctx = multiprocessing.get_context("spawn")  # no inherited threads or locks from the parent
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        try:
            return list(pool.map(_run_group, args))
        except cf.process.BrokenProcessPool:
            raise InputError("a worker process died (out of memory?); try fewer --workers") from None


def _dask(common: tuple, groups: list[list[int]], assignment: np.ndarray,
          scheduler: str) -> list[tuple[list[ReplicaRun], int]]:
    """The groups on a Dask cluster; the trace and the assignment are sent to the workers once."""
    client = open_client(scheduler)
    with client:
        model, cluster, config, max_batch, trace = common
        trace_f, assign_f = client.scatter([trace, assignment], broadcast=True)
        futures = [client.submit(run_group, model, cluster, config, max_batch, trace_f, g, assign_f, pure=False)
                   for g in groups]
        try:
            return client.gather(futures)
        except Exception as e:  # a worker died or raised: one line, no traceback
            raise InputError(f"--scheduler {scheduler}: a replica group failed ({type(e).__name__}: {e})") from None


def _result(model: ModelConfig, cluster: Cluster, trace: Trace, config: FleetConfig, runs: list[ReplicaRun],
            max_batch: int, capacity: int, shapes: int) -> FleetResult:
    n = len(trace)
    first = np.full(n, np.nan)
    done = np.full(n, np.nan)
    for r in runs:
        first[r.requests] = r.first_token_s
        done[r.requests] = r.done_s
    arrival = trace.arrival_s
    out = trace.output_tokens
    duration = float(done.max())
    tokens = int(out.sum())
    times = np.array([c.time_s for r in runs for c, _, _ in r.costs], dtype=np.float64)
    weights = np.array([d for r in runs for _, _, d in r.costs], dtype=np.int64)
    ttft = (first - arrival) * 1e3
    multi = out > 1
    tpot = (done[multi] - first[multi]) / (out[multi] - 1) * 1e3
    e2e = done - arrival
    parts = EnergyParts()
    for r in runs:
        parts = parts + static_energy(cluster.fabric_device, max(duration - r.busy_s, 0.0)).scaled(cluster.devices)
        for c, k, _ in r.costs:
            parts = parts + c.energy_parts.scaled(k)
    energy = parts.total_J
    return FleetResult(
        model=model.name, device=cluster.device.name, policy=cluster.policy, parallel=cluster.parallel.label,
        replicas=config.replicas, router=config.router, trace=trace.source, requests=n, max_batch=max_batch,
        capacity_batch=capacity, output_tokens=tokens, duration_s=duration, tokens_per_s=tokens / duration,
        tokens_per_s_per_replica=tokens / duration / config.replicas,
        requests_per_s=n / float(arrival[-1]) if arrival[-1] > 0 else float("inf"),
        served_requests_per_s=n / duration,
        tbt_p50_ms=weighted_percentile(times * 1e3, weights, 50),
        tbt_p90_ms=weighted_percentile(times * 1e3, weights, 90),
        tbt_p99_ms=weighted_percentile(times * 1e3, weights, 99),
        ttft_p50_ms=percentile(ttft, 50), ttft_p90_ms=percentile(ttft, 90), ttft_p99_ms=percentile(ttft, 99),
        tpot_p50_ms=percentile(tpot, 50), tpot_p99_ms=percentile(tpot, 99),
        e2e_p50_s=percentile(e2e, 50), e2e_p99_s=percentile(e2e, 99),
        energy_J=energy, energy_per_token_mJ=energy / tokens * 1e3,
        stages=sum(r.stages for r in runs), compiled_shapes=shapes,
        per_replica=tuple(_replica_summary(r, trace, duration) for r in runs),
    )


def _replica_summary(r: ReplicaRun, trace: Trace, duration: float) -> ReplicaSummary:
    tokens = int(trace.output_tokens[r.requests].sum())
    ttft = (r.first_token_s - trace.arrival_s[r.requests]) * 1e3
    times = np.array([c.time_s * 1e3 for c, _, _ in r.costs], dtype=np.float64)
    weights = np.array([d for _, _, d in r.costs], dtype=np.int64)
    return ReplicaSummary(
        replica=r.index, requests=len(r.requests), output_tokens=tokens, stages=r.stages,
        busy_share=r.busy_s / duration, tokens_per_s=tokens / duration,
        tbt_p99_ms=weighted_percentile(times, weights, 99) if len(times) else float("nan"),
        ttft_p50_ms=percentile(ttft, 50), ttft_p99_ms=percentile(ttft, 99))
